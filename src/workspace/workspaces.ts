import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { RunyardError } from "../core/errors.js";
import { type Logger, silentLogger } from "../core/logger.js";
import { checkedGit, cleanGitEnv, runGit } from "./git.js";
import { displayUrl } from "./git-failure.js";
import { Mirror, mirrorPath, pinRef, type RemoteCall } from "./mirror.js";
import { withMirrorLock } from "./mirror-lock.js";
import { removeFolder } from "./remove-folder.js";
import {
  createTaskRepo,
  keptCommit,
  keptRepoPath,
  pruneKeptRepos,
  readExpiredMark,
  taskRepoPath,
  touchKeptRepo,
} from "./task-repo.js";
import type { AllocateRequest, RetryPolicy, Workspace } from "./types.js";
import { GitWorktree, removeTaskFolders } from "./worktree.js";

export interface WorkspacesOptions {
  /** The runner's workspace folder: `mirrors/` and `worktrees/` are made in it. */
  root: string;
  retry: RetryPolicy;
  logger?: Logger;
  /** What git's env is taken from (PATH, HOME, SSH agent, proxies; nothing else); the runner's by default. */
  env?: Record<string, string | undefined>;
}

/**
 * How long a runner keeps a conversation's own folders for its follow-up turns after their last
 * use: a chat's folder, and the branch a task with a repo left (`<root>/kept/<key>.git`).
 */
export const conversationKeepMs = 7 * 24 * 3600 * 1000;

const conversationKeepDays = conversationKeepMs / (24 * 3600 * 1000);

/** Commits runyard makes when the request names no author. */
export const defaultAuthor = { name: "runyard", email: "runyard@localhost" };

/** A worktree key is one folder name, and one part of a ref name (`pinRef`): no `..`, no `.lock` end. */
const keyPattern = /^(?!.*\.\.)(?!.*\.lock$)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The runner's repo pool: a bare mirror per repo URL under `<root>/mirrors/`, fetched for every run,
 * written only by the runner; per run a repo under `<root>/task-repos/<key>.git` borrowing its objects,
 * with a worktree under `<root>/worktrees/<key>` on the run's branch. One instance per runner process;
 * `cleanLeftovers` removes a crashed runner's task folders when the next one starts.
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
    const taskRepo = taskRepoPath(this.options.root, key);
    const keptRepo = keptRepoPath(this.options.root, key);
    const mirror = new Mirror(this.mirrorFor(repoUrl), repoUrl, this.env);
    const remote: RemoteCall = {
      credentials: request.credentials,
      retry: this.options.retry,
      signal,
      onProgress: request.onProgress,
    };
    try {
      // What a crashed turn of the same key left is in the way; this instance does not hold it.
      await removeTaskFolders(path, taskRepo);
      const cut = await withMirrorLock(
        mirror.path,
        {
          signal,
          onWaiting: (pid) =>
            request.onProgress?.(
              `waiting for the mirror of ${displayUrl(repoUrl)}: process ${pid} is fetching into it`,
            ),
        },
        () => this.cutBranch(mirror, keptRepo, request, remote),
      );
      // The task's own repo and its checkout (the slow part for a big repo) need no mirror lock:
      // they write only the task's folders, and read what the kept repo or the pin in the mirror holds.
      const mirrorObjects = join(mirror.path, "objects");
      const gitDir = await createTaskRepo(this.env, {
        path: taskRepo,
        borrowed: cut.fromKept ? [join(keptRepo, "objects"), mirrorObjects] : [mirrorObjects],
        worktree: path,
        branch,
        commit: cut.start,
      });
      const workspace = new GitWorktree({
        mirror,
        env: this.env,
        path,
        gitDir,
        taskRepo,
        keptRepo,
        pinRef: pinRef(key, branch),
        branch,
        base: cut.base,
        baseCommit: cut.baseCommit,
        // A turn that goes on from the remote's branch goes on from the conversation's push.
        ...(cut.fromRemote ? { pushed: cut.fromRemote } : {}),
        author: request.author ?? defaultAuthor,
        remote,
        onReleased: () => this.held.delete(key),
      });
      const checkout = await runGit(this.env, ["reset", "--hard", "--quiet"], { cwd: path, signal });
      checkedGit(checkout, `cannot check out ${branch} in ${path}`);
      request.onProgress?.(`worktree ${path} on ${branch} from ${cut.base} (${cut.baseCommit.slice(0, 12)})`);
      this.logger.info({ repo: displayUrl(repoUrl), branch, key, path }, "workspace allocated");
      return workspace;
    } catch (error) {
      await removeTaskFolders(path, taskRepo);
      this.held.delete(key);
      throw error;
    }
  }

  /**
   * Removes every worktree and task repo (at runner start none is live: a crashed runner's), and every
   * kept branch untouched for `conversationKeepMs`. In each mirror it prunes the worktree records (an
   * earlier runyard linked them there), drops the pins of keys with neither a kept branch nor a live
   * task, and collects the garbage if due. Returns the worktree folders removed.
   */
  async cleanLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    const worktrees = join(this.options.root, "worktrees");
    for (const name of await readdir(worktrees).catch(() => [])) {
      if (this.held.has(name)) continue;
      await removeFolder(join(worktrees, name));
      removed.push(join(worktrees, name));
    }
    const taskRepos = join(this.options.root, "task-repos");
    for (const name of await readdir(taskRepos).catch(() => [])) {
      if (this.held.has(name.replace(/\.git$/, ""))) continue;
      await removeFolder(join(taskRepos, name));
    }
    const live = (key: string) => this.held.has(key);
    const kept = await pruneKeptRepos(this.options.root, conversationKeepMs, live);
    const mirrors = join(this.options.root, "mirrors");
    for (const name of await readdir(mirrors).catch(() => [])) {
      if (!name.endsWith(".git")) continue;
      const path = join(mirrors, name);
      // Only local git runs on it here: its folder name stands in for the URL in messages.
      const mirror = new Mirror(path, name, this.env);
      await withMirrorLock(path, {}, async () => {
        await mirror.git(["worktree", "prune"], { allowFailure: true });
        // What a removed kept branch or a crashed task started from is held by nothing else.
        await mirror.dropPins((key) => kept.remaining.has(key) || live(key));
        // No run is live at start: the one moment a gc cannot race another run's fetch.
        await mirror.collectGarbage();
      });
    }
    if (removed.length > 0) this.logger.info({ removed }, "removed worktrees left by an earlier runner");
    if (kept.removed.length > 0) {
      this.logger.info(
        { keys: kept.removed },
        `removed the kept branches of conversations untouched for ${conversationKeepDays} days`,
      );
    }
    return removed;
  }

  /**
   * Under the mirror lock: fetch, find the base, refuse a branch the remote has (unless reused), and
   * pin the remote commit the task starts from (`pinRef`) so no gc drops what the task repo borrows.
   * A follow-up starts from its kept repo when it has one (the turn that started from the remote
   * pinned its ancestors in the mirror).
   */
  private async cutBranch(mirror: Mirror, keptRepo: string, request: AllocateRequest, remote: RemoteCall) {
    const { branch } = request;
    await mirror.prepare();
    // The default branch is read beside the fetch: both are a round trip to the remote.
    const [fetched, defaultBranch] = await Promise.allSettled([
      mirror.fetch(remote),
      request.base === undefined ? mirror.defaultBranch(remote) : Promise.resolve(request.base),
    ]);
    if (fetched.status === "rejected") throw fetched.reason;
    if (defaultBranch.status === "rejected") throw defaultBranch.reason;
    const base = defaultBranch.value;
    const baseRef = `refs/remotes/origin/${base}`;
    const pin = pinRef(request.key, branch);
    const remoteRef = `refs/remotes/origin/${branch}`;
    const commits = base ? await mirror.commitsOf([baseRef, remoteRef]) : new Map<string, string>();
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
    const onRemote = commits.get(remoteRef);
    if (onRemote && !request.reuse) {
      throw new RunyardError(
        "WORKSPACE_BRANCH_EXISTS",
        `the branch ${branch} is already on ${displayUrl(mirror.url)}`,
      );
    }
    // A follow-up goes on from the kept branch, else the remote's (the kept one expired, but a turn
    // pushed it); without reuse the run starts from the base.
    const kept = request.reuse ? await keptCommit(this.env, keptRepo, branch) : undefined;
    if (kept) await touchKeptRepo(keptRepo);
    // After expiry the remote's branch is the conversation's only if it holds what it pushed: one it
    // never pushed, or put in place of its push, is someone else's (who may push to the remote, not
    // send this member's follow-ups), and the turn would run their code with this member's env.
    const mark = request.reuse && !kept ? await readExpiredMark(this.options.root, request.key) : undefined;
    const remoteIsOwn =
      onRemote !== undefined &&
      (mark === undefined ||
        mark.unknown ||
        (mark.pushed !== undefined && (await holds(mirror, onRemote, mark.pushed))));
    const fromRemote = request.reuse && !kept && remoteIsOwn ? onRemote : undefined;
    if (fromRemote) {
      request.onProgress?.(
        `no branch ${branch} is kept on this runner for this conversation: going on from ${branch} as ${displayUrl(mirror.url)} has it`,
      );
    } else if (request.reuse && !kept && mark) {
      // Starting from the base would lose the earlier turns' work, which the resumed session
      // would build on. (A key whose last turn kept nothing has no mark: it starts from the base.)
      throw new RunyardError(
        "WORKSPACE_BRANCH_EXPIRED",
        !mark.unknown && mark.pushed !== undefined
          ? `the branch ${branch} of this conversation expired: ${displayUrl(mirror.url)} no longer has the commit this conversation pushed to ${branch} (the branch there was replaced or deleted), and this runner keeps a conversation's branch ${conversationKeepDays} days after its last turn`
          : `the branch ${branch} of this conversation expired: it was never pushed to ${displayUrl(mirror.url)}, and this runner keeps a conversation's branch ${conversationKeepDays} days after its last turn`,
      );
    }
    const start = kept ?? fromRemote ?? baseCommit;
    if (!kept) await mirror.git(["update-ref", pin, start]);
    // A follow-up diffs against where the branch left its base, not the base's tip today; the kept
    // repo sees the mirror's objects too, so the merge base is found there.
    const forkPoint =
      start !== baseCommit
        ? (
            await runGit(this.env, [
              "--git-dir",
              kept ? keptRepo : mirror.path,
              "merge-base",
              start,
              baseCommit,
            ])
          ).stdout.trim()
        : "";
    return { base, baseCommit: forkPoint || baseCommit, start, fromKept: kept !== undefined, fromRemote };
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

/** Whether `tip` is `commit` or a descendant of it, as the mirror has them. */
async function holds(mirror: Mirror, tip: string, commit: string): Promise<boolean> {
  if (tip === commit) return true;
  const found = await mirror.git(["merge-base", "--is-ancestor", commit, tip], { allowFailure: true });
  return found.code === 0;
}
