import { execFile } from "node:child_process";
import { appendFile, copyFile, lstat, mkdir, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import { RunyardError } from "../core/errors.js";

/**
 * A task's `copy_files`: files of the runner's `agent_files_dir` (an `.env`, a local config the
 * repository does not hold) copied into its worktree before the first turn, at the same relative
 * path. The runner copies them itself, outside any sandbox, so nothing may lead it elsewhere: a
 * path with `..` or an absolute one, a link in the folder leading out of it, or a link in the
 * worktree (its content is the repository's, which anyone with push rights writes) that would
 * have the runner write outside the worktree.
 */
export async function copyTaskFiles(
  files: readonly string[],
  from: string | undefined,
  worktree: string,
  say: (line: string) => void,
  /**
   * A task's own cwd: the runner's folder check (core/work-folders.ts), asked again on where the
   * folder leads as the files are copied, so that a folder swapped for a link since the runner
   * checked it (by a step beside it) leads the copy nowhere else. Answers the refusal, if any.
   */
  cwdCheck?: (realPath: string) => string | undefined,
): Promise<void> {
  if (files.length === 0) return;
  if (!from) {
    throw refusal(
      `the task names copy_files (${files.join(", ")}), and this runner has no agent_files_dir to copy them from`,
    );
  }
  const root = await realpath(from).catch(() => {
    throw refusal(`this runner's agent_files_dir ${from} does not exist`);
  });
  const target = await realpath(worktree);
  const moved = cwdCheck?.(target);
  if (moved) throw new RunyardError("AGENT_CWD_NOT_ALLOWED", moved);
  for (const file of files) {
    if (isAbsolute(file) || file.split(/[\\/]/).includes("..") || file.includes("\0")) {
      throw refusal(`copy_files: ${JSON.stringify(file)} is not a relative path without ..`);
    }
    const source = await realpath(join(root, file)).catch(() => {
      throw refusal(`copy_files: ${JSON.stringify(file)} is not in the runner's agent_files_dir`);
    });
    if (!within(source, root)) {
      throw refusal(
        `copy_files: ${JSON.stringify(file)} is a symbolic link leading out of the runner's agent_files_dir`,
      );
    }
    if (!(await stat(source)).isFile()) {
      throw refusal(`copy_files: ${JSON.stringify(file)} is not a file (name each file of a folder)`);
    }
    const destination = await safeDestination(target, file);
    await copyFile(source, destination);
    say(`copied ${file} from the runner's agent_files_dir`);
  }
  await excludeFromCommits(target, files);
}

/**
 * The copied files are the runner's (an `.env` with keys), never the change: in a worktree they
 * go into its repository's `info/exclude`, so the task's commit leaves them out (a file the
 * repository already tracks is committed as any change to it is).
 */
async function excludeFromCommits(worktree: string, files: readonly string[]): Promise<void> {
  const common = await new Promise<string | undefined>((done) => {
    execFile(
      "git",
      ["rev-parse", "--path-format=absolute", "--git-common-dir"],
      { cwd: worktree },
      (error, out) => done(error ? undefined : out.trim()),
    );
  });
  if (!common || !(await lstat(join(worktree, ".git")).catch(() => undefined))) return;
  await mkdir(join(common, "info"), { recursive: true });
  const lines = files.map((file) => `/${file.replace(/^\.\//, "").replace(/([*?[\]!#\\])/g, "\\$1")}`);
  await appendFile(join(common, "info", "exclude"), `${lines.join("\n")}\n`);
}

/**
 * Where `file` goes in the worktree, its folders made: every part of the way a real folder (none
 * a link), and the file itself no link either.
 */
async function safeDestination(worktree: string, file: string): Promise<string> {
  const parts = file.split(/[\\/]/).filter((part) => part !== "" && part !== ".");
  let at = worktree;
  for (const part of parts.slice(0, -1)) {
    at = join(at, part);
    const info = await lstat(at).catch(() => undefined);
    if (!info) await mkdir(at, { mode: 0o755 });
    else if (!info.isDirectory()) {
      throw refusal(
        `copy_files: ${JSON.stringify(file)} would be written through ${relative(worktree, at)}, which in the worktree is ${info.isSymbolicLink() ? "a symbolic link" : "not a folder"}`,
      );
    }
  }
  const destination = join(at, parts.at(-1) ?? "");
  const existing = await lstat(destination).catch(() => undefined);
  if (existing && !existing.isFile()) {
    throw refusal(
      `copy_files: ${JSON.stringify(file)} is ${existing.isSymbolicLink() ? "a symbolic link" : "not a file"} in the worktree; it is not overwritten`,
    );
  }
  return destination;
}

function within(path: string, folder: string): boolean {
  return path.startsWith(folder.endsWith(sep) ? folder : `${folder}${sep}`);
}

function refusal(message: string): RunyardError {
  return new RunyardError("AGENT_FILES_NOT_ALLOWED", message);
}
