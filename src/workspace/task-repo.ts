import { writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { RunyardError } from "../core/errors.js";
import { runGit } from "./git.js";
import { maskGitOutput } from "./git-failure.js";

/** Where the repo of the task with worktree key `key` lives. */
export function taskRepoPath(root: string, key: string): string {
  return join(root, "task-repos", `${key}.git`);
}

export interface TaskRepoSetup {
  /** The task repo's folder (`taskRepoPath`); must not exist. */
  path: string;
  /** The mirror's `objects` folder, borrowed read-only. */
  mirrorObjects: string;
  /** The task's worktree folder, linked to the task repo. */
  worktree: string;
  branch: string;
  /** Where the branch starts: a commit the mirror has, pinned there by a `keptRef`. */
  commit: string;
}

/**
 * Makes a task's own repository, and returns the git folder of its worktree: a bare repo that borrows the mirror's objects through
 * `objects/info/alternates` (what `git clone --shared` does, without copying a ref or an object),
 * holding only the task's branch, with the task's worktree linked to it (not checked out yet).
 * The agent's commits, refs, index and objects land here; the mirror is never written by a task.
 * The task repo's config, hooks and alternates are the runner's: a sandboxed turn sees them
 * read-only (`gitExposure` in runner/agent-turns.ts).
 */
export async function createTaskRepo(env: Record<string, string>, setup: TaskRepoSetup): Promise<string> {
  const { path } = setup;
  const git = async (args: readonly string[]) => {
    const result = await runGit(env, ["--git-dir", path, ...args]);
    if (result.code !== 0) {
      throw new RunyardError(
        "WORKSPACE_GIT_FAILED",
        `git ${args[0]} failed in the task repo ${basename(path)}: ${maskGitOutput(result.stderr, [])}`,
      );
    }
  };
  const made = await runGit(env, ["init", "--quiet", "--bare", "--template=", path]);
  if (made.code !== 0) {
    throw new RunyardError(
      "WORKSPACE_GIT_FAILED",
      `cannot make the task repo ${path}: ${maskGitOutput(made.stderr, [])}`,
    );
  }
  // An agent's commit must not start a gc that outlives its turn; the repo lives as long as it.
  await git(["config", "gc.auto", "0"]);
  await git(["config", "maintenance.auto", "false"]);
  await writeFile(join(path, "objects", "info", "alternates"), `${setup.mirrorObjects}\n`);
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
