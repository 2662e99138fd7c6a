import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";

/**
 * Of the gitlinks `git add` recorded for repos nested in a task's worktree, those whose commit
 * may not be the nested repo's own. git takes a nested repo's HEAD from wherever its `.git`
 * leads: a `.git` file (`gitdir: /any/repo`), a `commondir`, or a link among its HEAD and refs
 * can each name another repository of the runner's machine, whose commit id would then be
 * committed and pushed on the task's branch. A nested repo counts as its own only when its git
 * folder is a real folder (in the worktree, or one the task's repo holds, as a submodule's
 * is) with no `commondir`, no reftable and no link on the way to its HEAD.
 */
export function foreignGitlinks(worktree: string, paths: readonly string[], taskRepo: string): string[] {
  return paths.filter((path) => {
    const dotGit = join(worktree, path, ".git");
    const found = lstatSync(dotGit, { throwIfNoEntry: false });
    // No `.git`: a gitlink of the tree as checked out (a submodule never initialised) that add left as it was.
    if (!found) return false;
    if (found.isDirectory()) return !ownGitFolder(dotGit);
    if (!found.isFile()) return true;
    const target = /^gitdir: (.+)$/m.exec(readFileSync(dotGit, "utf8"))?.[1]?.trim();
    if (!target) return true;
    const gitDir = resolve(dirname(dotGit), target);
    return !(within(gitDir, taskRepo) && ownGitFolder(gitDir));
  });
}

/** Whether git reads the HEAD of the git folder `gitDir` from inside it alone. */
function ownGitFolder(gitDir: string): boolean {
  const folder = lstatSync(gitDir, { throwIfNoEntry: false });
  if (!folder?.isDirectory()) return false;
  if (existsSync(join(gitDir, "commondir")) || existsSync(join(gitDir, "reftable"))) return false;
  for (const name of ["HEAD", "packed-refs"]) {
    const entry = lstatSync(join(gitDir, name), { throwIfNoEntry: false });
    if (entry && !entry.isFile()) return false;
  }
  return noLinksIn(join(gitDir, "refs"));
}

function noLinksIn(folder: string): boolean {
  const entry = lstatSync(folder, { throwIfNoEntry: false });
  if (!entry) return true;
  if (entry.isSymbolicLink()) return false;
  if (!entry.isDirectory()) return entry.isFile();
  return readdirSync(folder).every((name) => noLinksIn(join(folder, name)));
}

/** Whether `path`, its links resolved as far as it exists, lies inside `folder`'s real path. */
function within(path: string, folder: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const inside = real(folder);
  return real(path).startsWith(`${inside}${sep}`);
}
