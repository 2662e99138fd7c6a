import { existsSync, lstatSync } from "node:fs";
import { copyFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { RunyardError } from "../core/errors.js";
import { type GitResult, runGit } from "./git.js";
import { maskGitOutput } from "./git-failure.js";
import type { Mirror, RemoteCall } from "./mirror.js";
import { foreignGitlinks } from "./nested-repos.js";
import { runNetworkGit } from "./network-git.js";
import { removeFolder } from "./remove-folder.js";
import { keepBranch, removeLinks } from "./task-repo.js";
import type { DiffStats, Workspace } from "./types.js";

/**
 * Runyard's commits and pushes run no repo hooks: a hook path `npm install` set (husky) would run
 * linters, or fail the push, with the agent's env (the task's tests are the pipeline's own step).
 * Nor may a user's global `commit.gpgsign` prompt for a key.
 */
const noHooks = ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false"];

export interface WorktreeSetup {
  mirror: Mirror;
  env: Record<string, string>;
  path: string;
  /**
   * The worktree's git folder in the task repo, found before the task's code ran; the runner's git is
   * always given it by name. The worktree's `.git` file is the task's to write (its tests run there
   * unsandboxed), and could point at a folder whose config runs commands.
   */
  gitDir: string;
  /** The task's own repo, which the worktree is linked to (`task-repo.ts`). */
  taskRepo: string;
  /** The key's repo that keeps the branch for a follow-up turn (`keptRepoPath`). */
  keptRepo: string;
  /** The mirror's ref that pins where the key's branch left the remote (`pinRef`). */
  pinRef: string;
  branch: string;
  base: string;
  baseCommit: string;
  /** What the conversation pushed, when this turn went on from the remote's branch: kept unless it pushes. */
  pushed?: string;
  author: { name: string; email: string };
  remote: RemoteCall;
  /** Told once the worktree is gone, so its key may be allocated again. */
  onReleased: () => void;
}

/** One run's git worktree on its own branch, in a repo of its own that borrows the mirror's objects. */
export class GitWorktree implements Workspace {
  readonly path: string;
  readonly branch: string;
  readonly base: string;
  readonly baseCommit: string;
  private released = false;
  /** The commit this turn pushed, if it pushed: its kept repo records it (`keepBranch`). */
  private pushed: string | undefined;

  constructor(private readonly setup: WorktreeSetup) {
    this.path = setup.path;
    this.branch = setup.branch;
    this.base = setup.base;
    this.baseCommit = setup.baseCommit;
    this.pushed = setup.pushed;
  }

  async commitAll(message: string): Promise<{ commit: string } | null> {
    await this.reclaim();
    await this.stageAll();
    const staged = await this.git(["diff", "--cached", "--quiet"], { allowFailure: true });
    if (staged.code === 0) return null;
    const { name, email } = this.setup.author;
    await this.git([...noHooks, "commit", "--quiet", "--no-verify", "--message", message], {
      env: {
        GIT_AUTHOR_NAME: name,
        GIT_AUTHOR_EMAIL: email,
        GIT_COMMITTER_NAME: name,
        GIT_COMMITTER_EMAIL: email,
      },
    });
    const head = await this.git(["rev-parse", "HEAD"]);
    return { commit: head.stdout.trim() };
  }

  /**
   * The branch against its base commit, committed or not, new files included; a private index copy
   * takes the uncommitted changes, so what the agent staged is left as it was.
   */
  async diff(): Promise<{ patch: string; stats: DiffStats }> {
    await this.reclaim();
    const { gitDir } = this.setup;
    const index = join(gitDir, "runyard-diff-index");
    try {
      if (existsSync(join(gitDir, "index"))) await copyFile(join(gitDir, "index"), index);
      const env = { GIT_INDEX_FILE: index };
      if (!existsSync(index)) await this.git(["read-tree", "HEAD"], { env });
      await this.stageAll(env);
      const patch = await this.git(["diff", "--cached", "--binary", this.baseCommit, "--"], { env });
      const numstat = await this.git(["diff", "--cached", "--numstat", this.baseCommit, "--"], { env });
      return { patch: patch.stdout, stats: statsOf(numstat.stdout) };
    } finally {
      await rm(index, { force: true });
    }
  }

  async push(): Promise<void> {
    await this.reclaim();
    const ref = `refs/heads/${this.branch}`;
    const tip = await runGit(this.setup.env, [
      "--git-dir",
      this.setup.taskRepo,
      "rev-parse",
      "--verify",
      "--quiet",
      `${ref}^{commit}`,
    ]);
    await runNetworkGit({
      env: this.setup.env,
      cwd: this.path,
      args: [
        ...this.located,
        ...noHooks,
        "push",
        "--quiet",
        "--no-verify",
        this.setup.mirror.url,
        `${ref}:${ref}`,
      ],
      action: "pushing to",
      url: this.setup.mirror.url,
      ...this.setup.remote,
    });
    if (tip.code === 0) this.pushed = tip.stdout.trim();
  }

  /**
   * Keeps the branch in the key's kept repo for a follow-up, then removes the worktree and task repo.
   * A branch the agent broke is not kept: the kept repo holds the last keepable turn's.
   */
  async release(): Promise<void> {
    if (this.released) return;
    const { mirror, taskRepo, keptRepo } = this.setup;
    await this.reclaim()
      .then(async () => {
        const pin = await mirror.git(["rev-parse", "--verify", "--quiet", `${this.setup.pinRef}^{commit}`], {
          allowFailure: true,
        });
        await keepBranch(this.setup.env, {
          keptRepo,
          mirrorObjects: join(mirror.path, "objects"),
          taskRepo,
          branch: this.branch,
          pinned: pin.code === 0 ? pin.stdout.trim() : undefined,
          pushed: this.pushed,
        });
      })
      .catch(() => undefined);
    await removeTaskFolders(this.path, taskRepo);
    this.released = true;
    this.setup.onReleased();
  }

  /**
   * `git add --all`, without git looking inside a nested repo. For an index gitlink whose folder holds
   * a repo that `.gitmodules` names, git runs `git status` there and so reads that repo's config
   * (`core.fsmonitor`, filters, hooks), which the task wrote: a command run as the runner, unsandboxed.
   * Those gitlinks leave the index first; `add` puts them back as their HEAD's commit, read from refs.
   */
  private async stageAll(env?: Record<string, string>): Promise<void> {
    const staged = await this.git(["ls-files", "--stage", "-z"], { env });
    const nested = staged.stdout.split("\0").flatMap((entry) => {
      const path = /^160000 [0-9a-f]+ \d\t(.+)$/s.exec(entry)?.[1];
      return path && lstatSync(join(this.path, path, ".git"), { throwIfNoEntry: false }) ? [path] : [];
    });
    if (nested.length > 0) await this.git(["update-index", "--force-remove", "--", ...nested], { env });
    await this.addAll(env);
    // What add recorded of a nested repo whose `.git` leads elsewhere is another repo's commit.
    const added = await this.git(["ls-files", "--stage", "-z"], { env });
    const gitlinks = added.stdout.split("\0").flatMap((entry) => {
      const path = /^160000 [0-9a-f]+ \d\t(.+)$/s.exec(entry)?.[1];
      return path ? [path] : [];
    });
    const foreign = foreignGitlinks(this.path, gitlinks, this.setup.taskRepo);
    if (foreign.length > 0) await this.git(["update-index", "--force-remove", "--", ...foreign], { env });
  }

  /**
   * `git add --all`, leaving out nested repos with no commit yet (an agent's `git init`): git refuses
   * the whole add for one ("does not have a commit checked out"), losing the turn's other work.
   * Git could record nothing of such a folder but a commit anyway.
   */
  private async addAll(env?: Record<string, string>): Promise<void> {
    const left: string[] = [];
    for (;;) {
      const pathspec = left.length > 0 ? ["--", ".", ...left.map((path) => `:(exclude,literal)${path}`)] : [];
      const added = await this.git(["add", "--all", ...pathspec], { env, allowFailure: true });
      if (added.code === 0) return;
      const empty = [...added.stderr.matchAll(/^error: '(.+)\/' does not have a commit checked out$/gm)]
        .map((match) => match[1] ?? "")
        .filter((path) => path !== "" && !left.includes(path));
      if (empty.length === 0) {
        throw new RunyardError(
          "WORKSPACE_GIT_FAILED",
          `git add failed in ${this.path}: ${maskGitOutput(added.stderr || added.stdout, [])}`,
        );
      }
      left.push(...empty);
    }
  }

  /** What the runner's git reads and writes of the task repo after the turn holds no link (`removeLinks`). */
  private async reclaim(): Promise<void> {
    if (this.released)
      throw new RunyardError("WORKSPACE_GIT_FAILED", `the worktree ${this.path} was released`);
    await removeLinks(this.setup.taskRepo, this.setup.gitDir);
  }

  /** Where the runner's git finds this worktree's repo: never from the worktree's own `.git`. */
  private get located(): string[] {
    return ["--git-dir", this.setup.gitDir, "--work-tree", this.path];
  }

  private async git(
    args: readonly string[],
    call: { env?: Record<string, string>; allowFailure?: boolean } = {},
  ) {
    if (this.released)
      throw new RunyardError("WORKSPACE_GIT_FAILED", `the worktree ${this.path} was released`);
    // Local steps ignore the run's signal: a canceled run may still want its diff as an artifact.
    const result: GitResult = await runGit(this.setup.env, [...this.located, ...args], {
      cwd: this.path,
      env: call.env,
    });
    if (result.code !== 0 && !call.allowFailure) {
      throw new RunyardError(
        "WORKSPACE_GIT_FAILED",
        `git ${subcommand(args)} failed in ${this.path}: ${maskGitOutput(result.stderr || result.stdout, [])}`,
      );
    }
    return result;
  }
}

/** Removes a task's worktree and its repo, whatever the agent left in them. */
export async function removeTaskFolders(worktree: string, taskRepo: string): Promise<void> {
  await removeFolder(worktree);
  await removeFolder(taskRepo);
}

/** Stats of `git diff --numstat`: a binary file counts as a file, with no lines. */
export function statsOf(numstat: string): DiffStats {
  const stats: DiffStats = { files: 0, insertions: 0, deletions: 0 };
  for (const line of numstat.split("\n")) {
    const [added, deleted] = line.split("\t");
    if (line === "" || added === undefined || deleted === undefined) continue;
    stats.files++;
    if (added !== "-") stats.insertions += Number(added);
    if (deleted !== "-") stats.deletions += Number(deleted);
  }
  return stats;
}

/** The git command of an argument list, for a message (never the arguments: a commit message could be long). */
function subcommand(args: readonly string[]): string {
  return args.find((arg, i) => !arg.startsWith("-") && args[i - 1] !== "-c") ?? "";
}
