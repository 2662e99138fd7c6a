import { existsSync } from "node:fs";
import { chmod, lstat, lutimes, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { RunyardError } from "../core/errors.js";
import { checkedGit, runGit } from "./git.js";
import { maskGitOutput } from "./git-failure.js";
import { removeFolder } from "./remove-folder.js";

/** Where the repo of the task with worktree key `key` lives. */
export function taskRepoPath(root: string, key: string): string {
  return join(root, "task-repos", `${key}.git`);
}

/**
 * Where key `key`'s last turn keeps its branch for the next: a bare repo of its own borrowing the
 * mirror's objects. Not the mirror: every task of the repository on this runner (another tenant's
 * too) sees its objects, and a branch never pushed must add none there.
 */
export function keptRepoPath(root: string, key: string): string {
  return join(root, "kept", `${key}.git`);
}

/**
 * Left where `pruneKeptRepos` removed key `key`'s kept repo, so a follow-up is told its branch expired
 * (one whose last turn kept nothing, a broken branch, goes on from the base). Removed `markKeepMs` later.
 */
export function expiredMarkPath(root: string, key: string): string {
  return join(root, "kept", `${key}.expired`);
}

/** How long an expiry mark stays: long after anyone would still send a follow-up. */
const markKeepMs = 90 * 24 * 3600 * 1000;

/**
 * A kept repo's record of what its conversation last pushed (the commit, or empty), written by the
 * runner alone (`keepBranch`) and copied into the expiry mark: a follow-up then goes on only from the
 * branch it pushed, never from one of that name someone else made on the remote.
 */
const pushedRecord = "runyard-pushed";

/**
 * What key `key`'s expiry mark says of its pushes: `pushed` (the last pushed commit, undefined if
 * none), or `unknown` for a mark of a kept repo older than the record; undefined without a mark.
 */
export async function readExpiredMark(
  root: string,
  key: string,
): Promise<{ unknown: true } | { unknown: false; pushed: string | undefined } | undefined> {
  const path = expiredMarkPath(root, key);
  const info = await lstat(path).catch(() => undefined);
  if (!info) return undefined;
  const text = info.isFile() ? await readFile(path, "utf8").catch(() => "") : "";
  const pushed = /^pushed ([0-9a-f]{40,64})$/m.exec(text)?.[1];
  if (pushed) return { unknown: false, pushed };
  if (/^unpushed$/m.test(text)) return { unknown: false, pushed: undefined };
  return { unknown: true };
}

/** The mark's text for a kept repo about to go: what its record says of its pushes. */
async function markText(keptRepo: string): Promise<string> {
  const path = join(keptRepo, pushedRecord);
  const info = await lstat(path).catch(() => undefined);
  if (!info?.isFile()) return "";
  const commit = (await readFile(path, "utf8").catch(() => "")).trim();
  return /^[0-9a-f]{40,64}$/.test(commit) ? `pushed ${commit}\n` : "unpushed\n";
}

/**
 * Marks a kept repo used now (on keep, and on a follow-up's start: git's reading changes no file);
 * `pruneKeptRepos` judges by its folder's own time. Never through a link.
 */
export async function touchKeptRepo(keptRepo: string): Promise<void> {
  const now = new Date();
  await lutimes(keptRepo, now, now).catch(() => undefined);
}

/**
 * Removes the kept repos under `<root>/kept/` untouched for longer than `keepMs`, but none of a key
 * `live` names (a task repo borrows its objects). Follows no link: a link is removed as one.
 * Returns the keys removed and the keys that still have a kept repo.
 */
export async function pruneKeptRepos(
  root: string,
  keepMs: number,
  live: (key: string) => boolean,
): Promise<{ removed: string[]; remaining: Set<string> }> {
  const folder = join(root, "kept");
  const removed: string[] = [];
  const remaining = new Set<string>();
  for (const name of await readdir(folder).catch(() => [])) {
    const path = join(folder, name);
    const info = await lstat(path).catch(() => undefined);
    if (!info) continue;
    if (name.endsWith(".expired")) {
      if (Date.now() - info.mtimeMs > markKeepMs) await rm(path, { force: true });
      continue;
    }
    const key = name.replace(/\.git$/, "");
    if (live(key) || Date.now() - info.mtimeMs <= keepMs) {
      remaining.add(key);
      continue;
    }
    const mark = info.isDirectory() ? await markText(path) : "";
    if (info.isDirectory()) await removeFolder(path);
    else await rm(path, { force: true });
    await writeFile(join(folder, `${key}.expired`), mark, { flag: "w" }).catch(() => undefined);
    removed.push(key);
  }
  return { removed, remaining };
}

/** The commit `branch` is kept at in a key's kept repo, or undefined when nothing is kept. */
export async function keptCommit(
  env: Record<string, string>,
  keptRepo: string,
  branch: string,
): Promise<string | undefined> {
  if (!existsSync(keptRepo)) return undefined;
  const found = await runGit(env, [
    "--git-dir",
    keptRepo,
    "rev-parse",
    "--verify",
    "--quiet",
    `refs/heads/${branch}^{commit}`,
  ]);
  return found.code === 0 ? found.stdout.trim() : undefined;
}

/**
 * Copies a task's branch into the key's kept repo (made on first use) by a fetch, not a file copy:
 * git hashes every object it receives, so whatever the agent wrote into its object files, the kept
 * repo gets only objects the branch reaches, each what its name says.
 */
export async function keepBranch(
  env: Record<string, string>,
  keep: {
    keptRepo: string;
    mirrorObjects: string;
    taskRepo: string;
    branch: string;
    /** The commit the mirror pins for the key (`pinRef`), if it still has one. */
    pinned: string | undefined;
    /** The commit this turn pushed, if it pushed: recorded for a follow-up after the kept repo expires. */
    pushed?: string | undefined;
  },
): Promise<void> {
  const { keptRepo } = keep;
  if (!existsSync(join(keptRepo, "objects", "info", "alternates"))) {
    const made = await runGit(env, ["init", "--quiet", "--bare", "--template=", keptRepo]);
    if (made.code !== 0) return;
    await runGit(env, ["--git-dir", keptRepo, "config", "gc.auto", "0"]);
    await writeFile(join(keptRepo, "objects", "info", "alternates"), `${keep.mirrorObjects}\n`);
  }
  await runGit(env, [
    "--git-dir",
    keptRepo,
    "fetch",
    "--quiet",
    "--no-tags",
    "--no-recurse-submodules",
    "--no-write-fetch-head",
    keep.taskRepo,
    `+refs/heads/${keep.branch}:refs/heads/${keep.branch}`,
  ]);
  // Objects the branch reaches that only the mirror holds and the pin does not keep (a merged remote
  // branch, which the remote may delete and a gc then drop) are copied in too.
  await runGit(
    env,
    ["--git-dir", keptRepo, "pack-objects", "--revs", "--quiet", join(keptRepo, "objects", "pack", "pack")],
    { input: `refs/heads/${keep.branch}\n${keep.pinned ? `^${keep.pinned}\n` : ""}` },
  );
  // What the conversation pushed last; a turn that did not push leaves an earlier turn's record.
  const record = join(keptRepo, pushedRecord);
  if (keep.pushed) await writeFile(record, `${keep.pushed}\n`);
  else if (!existsSync(record)) await writeFile(record, "");
  await touchKeptRepo(keptRepo);
}

export interface TaskRepoSetup {
  /** The task repo's folder (`taskRepoPath`); must not exist. */
  path: string;
  /** The object folders it borrows read-only: the key's kept repo's (if any), the mirror's. */
  borrowed: string[];
  /** The task's worktree folder, linked to the task repo. */
  worktree: string;
  branch: string;
  /** Where the branch starts: a commit the kept repo has, or the mirror (pinned there by a `pinRef`). */
  commit: string;
}

/**
 * Makes a task's own bare repo holding only its branch, its worktree linked (not checked out), and
 * returns the worktree's git folder. It borrows the mirror's (and kept repo's) objects through
 * `objects/info/alternates`, as `git clone --shared` does without copying a ref or an object: the
 * agent's commits, refs, index and objects land here, never in the mirror. Its config, hooks and
 * alternates are the runner's, read-only to a sandboxed turn (`gitExposure` in runner/agent-turns.ts).
 */
export async function createTaskRepo(env: Record<string, string>, setup: TaskRepoSetup): Promise<string> {
  const { path } = setup;
  const git = async (args: readonly string[]) =>
    checkedGit(
      await runGit(env, ["--git-dir", path, ...args]),
      `git ${args[0]} failed in the task repo ${basename(path)}`,
    );
  checkedGit(
    await runGit(env, ["init", "--quiet", "--bare", "--template=", path]),
    `cannot make the task repo ${path}`,
  );
  // An agent's commit must not start a gc that outlives its turn; the repo lives as long as it.
  await git(["config", "gc.auto", "0"]);
  await git(["config", "maintenance.auto", "false"]);
  await writeFile(
    join(path, "objects", "info", "alternates"),
    setup.borrowed.map((folder) => `${folder}\n`).join(""),
  );
  await git(["update-ref", `refs/heads/${setup.branch}`, setup.commit]);
  await git(["worktree", "add", "--quiet", "--no-checkout", setup.worktree, setup.branch]);
  // Read now, before any of the task's code runs: afterwards the worktree's `.git` file is the task's.
  const found = await runGit(env, ["rev-parse", "--absolute-git-dir"], { cwd: setup.worktree });
  const gitDir = found.stdout.trim();
  if (found.code !== 0 || dirname(gitDir) !== join(path, "worktrees")) {
    throw new RunyardError(
      "WORKSPACE_GIT_FAILED",
      `the worktree ${setup.worktree} is not linked to its task repo: ${maskGitOutput(found.stderr, [])}`,
    );
  }
  return gitDir;
}

/**
 * Removes every link (anything neither file nor folder) from the task repo's folders its agent could
 * write: objects, refs and logs, the worktree's git folder. Git makes none there, and the runner's git,
 * run after the turn outside any sandbox, follows them: a linked `COMMIT_EDITMSG`, reflog or object
 * folder would have it write (and the keeping fetch read) on the runner's machine. Called once the
 * turn's processes are gone; a folder the agent closed is opened first.
 */
export async function removeLinks(taskRepo: string, gitDir: string): Promise<void> {
  for (const folder of [...["objects", "refs", "logs"].map((name) => join(taskRepo, name)), gitDir]) {
    await removeLinksIn(folder);
  }
}

async function removeLinksIn(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (!info || info.isFile()) return;
  if (!info.isDirectory()) {
    await rm(path, { force: true });
    return;
  }
  if ((info.mode & 0o700) !== 0o700) await chmod(path, info.mode | 0o700);
  for (const name of await readdir(path)) await removeLinksIn(join(path, name));
}
