import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { RunyardError } from "../core/errors.js";
import { type Logger, silentLogger } from "../core/logger.js";
import { cleanGitEnv, runGit } from "./git.js";
import { displayUrl, maskGitOutput } from "./git-failure.js";
import { Mirror, mirrorPath, type RemoteCall } from "./mirror.js";
import { withMirrorLock } from "./mirror-lock.js";
import { removeFolder } from "./remove-folder.js";
import type { AllocateRequest, RetryPolicy, Workspace } from "./types.js";
import { GitWorktree } from "./worktree.js";

export interface WorkspacesOptions {
  /** The runner's workspace folder: `mirrors/` and `worktrees/` are made in it. */
  root: string;
  retry: RetryPolicy;
  logger?: Logger;
  /**
   * The environment git's own is taken from (PATH, HOME, SSH agent, proxies; nothing else
   * passes). The runner's environment by default.
   */
  env?: Record<string, string | undefined>;
}

/** Commits runyard makes when the request names no author. */
export const defaultAuthor = { name: "runyard", email: "runyard@localhost" };

/** A worktree key is one folder name. */
const keyPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The runner's repo pool (seed 003): a bare mirror per repo URL under `<root>/mirrors/`,
 * fetched afresh for every run, and a worktree per run under `<root>/worktrees/<key>` on its
 * own branch. One instance per runner process; a crashed runner's worktrees are removed by
 * `cleanLeftovers` when the next one starts.
 */
export class Workspaces {
  private readonly env: Record<string, string>;
  private readonly logger: Logger;
  /** Keys of worktrees this instance handed out and that are not released yet. */
  private readonly held = new Set<string>();

  constructor(private readonly options: WorkspacesOptions) {
    this.env = cleanGitEnv(options.env ?? process.env);
    this.logger = options.logger ?? silentLogger;
  }

  /** Where the mirror of `repoUrl` is (whether it exists yet or not). */
  mirrorFor(repoUrl: string): string {
    return mirrorPath(this.options.root, repoUrl);
  }

  async allocate(request: AllocateRequest): Promise<Workspace> {
    await this.check(request);
    const { key, branch, repoUrl, signal } = request;
    if (this.held.has(key)) {
      throw new RunyardError("WORKSPACE_IN_USE", `the worktree ${key} is held by a run that has not ended`);
    }
    this.held.add(key);
    const path = join(this.options.root, "worktrees", key);
    const mirror = new Mirror(this.mirrorFor(repoUrl), repoUrl, this.env);
    const remote: RemoteCall = {
      credentials: request.credentials,
      retry: this.options.retry,
      signal,
      onProgress: request.onProgress,
    };
    try {
      const cut = await withMirrorLock(
        mirror.path,
        {
          signal,
          onWaiting: (pid) =>
            request.onProgress?.(
              `waiting for the mirror of ${displayUrl(repoUrl)}: process ${pid} is fetching into it`,
            ),
        },
        () => this.addWorktree(mirror, path, request, remote),
      );
      const workspace = new GitWorktree({
        mirror,
        env: this.env,
        path,
        branch,
        ...cut,
        author: request.author ?? defaultAuthor,
        remote,
        onReleased: () => this.held.delete(key),
      });
      // The checkout (the slow part for a big repo) runs outside the mirror lock: it writes
      // only this worktree's files and index.
      const checkout = await runGit(this.env, ["reset", "--hard", "--quiet"], { cwd: path, signal });
      if (checkout.code !== 0) {
        throw new RunyardError(
          "WORKSPACE_GIT_FAILED",
          `cannot check out ${branch} in ${path}: ${maskGitOutput(checkout.stderr, [])}`,
        );
      }
      request.onProgress?.(`worktree ${path} on ${branch} from ${cut.base} (${cut.baseCommit.slice(0, 12)})`);
      this.logger.info({ repo: displayUrl(repoUrl), branch, key, path }, "workspace allocated");
      return workspace;
    } catch (error) {
      await this.removeWorktree(mirror, path);
      this.held.delete(key);
      throw error;
    }
  }

  /**
   * Removes every worktree under `<root>/worktrees/` (at runner start none is live: they are a
   * crashed runner's), prunes each mirror's record of them and collects its garbage if due.
   * Returns the folders removed.
   */
  async cleanLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    const worktrees = join(this.options.root, "worktrees");
    for (const name of await readdir(worktrees).catch(() => [])) {
      if (this.held.has(name)) continue;
      await removeFolder(join(worktrees, name));
      removed.push(join(worktrees, name));
    }
    const mirrors = join(this.options.root, "mirrors");
    for (const name of await readdir(mirrors).catch(() => [])) {
      if (!name.endsWith(".git")) continue;
      const path = join(mirrors, name);
      // Only local git runs on it here: its folder name stands in for the URL in messages.
      const mirror = new Mirror(path, name, this.env);
      await withMirrorLock(path, {}, async () => {
        await mirror.git(["worktree", "prune"], { allowFailure: true });
        // No run is live at start: the one moment a gc cannot race another run's fetch.
        await mirror.collectGarbage();
      });
    }
    if (removed.length > 0) this.logger.info({ removed }, "removed worktrees left by an earlier runner");
    return removed;
  }

  /** Under the mirror lock: fetch, find the base, refuse a taken branch, add the worktree unchecked-out. */
  private async addWorktree(mirror: Mirror, path: string, request: AllocateRequest, remote: RemoteCall) {
    const { branch } = request;
    await mirror.prepare();
    // The default branch is read beside the fetch: both are a round trip to the remote.
    const [fetched, defaultBranch] = await Promise.allSettled([
      mirror.fetch(remote),
      request.base === undefined ? mirror.defaultBranch(remote) : Promise.resolve(request.base),
    ]);
    if (fetched.status === "rejected") throw fetched.reason;
    if (defaultBranch.status === "rejected") throw defaultBranch.reason;
    // A worktree left at this key by a run that never released it (a turn of the same
    // conversation ended by a crash) is in the way; this instance does not hold it.
    await this.removeWorktree(mirror, path, { locked: true });
    const base = defaultBranch.value;
    const baseRef = `refs/remotes/origin/${base}`;
    const localRef = `refs/heads/${branch}`;
    const remoteRef = `refs/remotes/origin/${branch}`;
    const commits = base ? await mirror.commitsOf([baseRef, localRef, remoteRef]) : new Map<string, string>();
    const baseCommit = commits.get(baseRef);
    if (!base || !baseCommit) {
      const branches = await mirror.remoteBranches();
      const there = branches.length > 0 ? `it has ${branches.join(", ")}` : "it has no branches yet";
      throw new RunyardError(
        "WORKSPACE_BASE_MISSING",
        base
          ? `the base branch ${base} is not on ${displayUrl(mirror.url)}; ${there}`
          : `${displayUrl(mirror.url)} has no default branch; ${there}`,
        { details: { branches } },
      );
    }
    const local = commits.get(localRef);
    const onRemote = commits.get(remoteRef);
    let add: string[];
    if (request.reuse && local) {
      add = [path, branch];
    } else if (request.reuse && onRemote) {
      add = ["-B", branch, path, onRemote];
    } else if (onRemote) {
      throw new RunyardError(
        "WORKSPACE_BRANCH_EXISTS",
        `the branch ${branch} is already on ${displayUrl(mirror.url)}`,
      );
    } else {
      // -B: a local branch of that name is what an earlier run left unpushed; the run starts anew.
      add = ["-B", branch, path, baseCommit];
    }
    const added = await mirror.git(["worktree", "add", "--quiet", "--no-checkout", ...add], {
      allowFailure: true,
    });
    if (added.code !== 0) {
      const reason = maskGitOutput(added.stderr, []);
      if (/already checked out|already used by worktree/i.test(added.stderr)) {
        throw new RunyardError(
          "WORKSPACE_IN_USE",
          `the branch ${branch} is checked out by another run: ${reason}`,
        );
      }
      throw new RunyardError("WORKSPACE_GIT_FAILED", `cannot add the worktree ${path}: ${reason}`);
    }
    // A follow-up turn diffs against where the branch left its base, not the base's tip today.
    const forkPoint =
      request.reuse && (local || onRemote)
        ? (await mirror.git(["merge-base", branch, baseCommit], { allowFailure: true })).stdout.trim()
        : "";
    return { base, baseCommit: forkPoint || baseCommit };
  }

  private async removeWorktree(mirror: Mirror, path: string, options: { locked?: boolean } = {}) {
    if (!existsSync(path)) return;
    await mirror.git(["worktree", "remove", "--force", "--force", path], { allowFailure: true });
    await removeFolder(path);
    const prune = () => mirror.git(["worktree", "prune"], { allowFailure: true });
    if (options.locked) await prune();
    else await withMirrorLock(mirror.path, {}, prune);
  }

  private async check(request: AllocateRequest): Promise<void> {
    if (!keyPattern.test(request.key)) {
      throw new RunyardError(
        "INVALID_INPUT",
        `the workspace key ${JSON.stringify(request.key)} is not a folder name`,
        {
          hint: "Use letters, digits, '.', '_' and '-' (a run or conversation id).",
        },
      );
    }
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(request.repoUrl) && /^https?:/i.test(request.repoUrl)) {
      throw new RunyardError(
        "INVALID_INPUT",
        `the repo URL ${displayUrl(request.repoUrl)} holds credentials`,
        {
          hint: "Give the token as the run's git credentials; runyard passes it to git through GIT_ASKPASS.",
        },
      );
    }
    for (const [what, name] of [
      ["branch", request.branch],
      ["base", request.base],
    ] as const) {
      if (name === undefined) continue;
      const valid = await runGit(this.env, ["check-ref-format", "--branch", name]);
      if (name.startsWith("-") || valid.code !== 0) {
        throw new RunyardError(
          "INVALID_INPUT",
          `the ${what} ${JSON.stringify(name)} is not a valid branch name`,
        );
      }
    }
  }
}
