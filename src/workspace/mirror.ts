import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { RunyardError } from "../core/errors.js";
import { checkedGit, type GitCall, type GitResult, runGit } from "./git.js";
import { runNetworkGit } from "./network-git.js";
import type { GitCredentials, RetryPolicy } from "./types.js";

/** Mirrors this process has made or checked: the check costs a git process per run otherwise. */
const prepared = new Set<string>();

/** Where the mirror of a repo URL lives: one bare repo per URL, named by its hash. */
export function mirrorPath(root: string, repoUrl: string): string {
  const hash = createHash("sha256").update(repoUrl).digest("hex").slice(0, 16);
  return join(root, "mirrors", `${hash}.git`);
}

export interface RemoteCall {
  credentials?: GitCredentials;
  retry: RetryPolicy;
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
}

/**
 * Pins the remote commit a key's task started from, so no mirror gc drops what its task or kept repo
 * borrows. Dropped at a runner's start once the key has neither (`dropPins`).
 */
export function pinRef(key: string, branch: string): string {
  return `refs/runyard/keys/${key}/heads/${branch}`;
}

/**
 * A bare repo caching one remote, written only by the runner's git; a task sees only its objects,
 * read-only (`task-repo.ts`). Not a `clone --mirror`, whose fetch would overwrite (and `--prune`
 * delete) what runs keep: the remote's branches land in `refs/remotes/origin/*`, task starts are
 * pinned in `refs/runyard/keys/*` (`pinRef`), branches tasks leave are kept apart (`keptRepoPath`).
 * Callers hold the mirror lock for `prepare`, `fetch` and ref updates.
 */
export class Mirror {
  constructor(
    readonly path: string,
    readonly url: string,
    private readonly env: Record<string, string>,
  ) {}

  /** Runs git on the mirror; a non-zero exit is an error unless `allowFailure`. */
  async git(args: readonly string[], call: GitCall & { allowFailure?: boolean } = {}): Promise<GitResult> {
    const result = await runGit(this.env, ["--git-dir", this.path, ...args], call);
    return call.allowFailure
      ? result
      : checkedGit(result, `git ${args.join(" ")} failed in the mirror of ${this.url}`);
  }

  /** Makes the bare repo if it is not there (or a crash left it half made). */
  async prepare(): Promise<void> {
    if (prepared.has(this.path) && existsSync(join(this.path, "config"))) return;
    if (existsSync(join(this.path, "config"))) {
      const configured = await this.git(["config", "--get", "remote.origin.url"], { allowFailure: true });
      if (configured.stdout.trim() === this.url) {
        prepared.add(this.path);
        return;
      }
      if (configured.code === 0) {
        throw new RunyardError(
          "WORKSPACE_GIT_FAILED",
          `the mirror ${this.path} caches ${configured.stdout.trim()}, not ${this.url}`,
          { hint: "Two repo URLs share a mirror name; move the mirror folder aside and run again." },
        );
      }
    }
    await rm(this.path, { recursive: true, force: true });
    await mkdir(dirname(this.path), { recursive: true });
    await runGit(this.env, ["init", "--quiet", "--bare", this.path]);
    await this.git(["config", "remote.origin.url", this.url]);
    await this.git(["config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"]);
    // No git of the runner's may start a gc that packs refs while another run fetches, or that
    // prunes what a live task's repo borrows. The runner collects garbage at start (`collectGarbage`).
    await this.git(["config", "gc.auto", "0"]);
    await this.git(["config", "maintenance.auto", "false"]);
    prepared.add(this.path);
  }

  /**
   * A foreground gc when git's thresholds say so, only while no run uses the mirror; each task's
   * start is pinned (`pinRef`) before its repo exists, so a gc never drops what a task repo borrows.
   */
  async collectGarbage(): Promise<void> {
    await this.git(["-c", "gc.auto=6700", "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"], {
      allowFailure: true,
    });
  }

  /** Deletes the pins of keys `kept` does not name, so a gc may drop what only they held (none live). */
  async dropPins(kept: (key: string) => boolean): Promise<void> {
    const pins = await this.git(["for-each-ref", "--format=%(refname)", "refs/runyard/keys/"]);
    const dropped = pins.stdout.split("\n").filter((ref) => {
      const key = ref.split("/")[3];
      return key !== undefined && !kept(key);
    });
    if (dropped.length === 0) return;
    await this.git(["update-ref", "--stdin"], { input: dropped.map((ref) => `delete ${ref}\n`).join("") });
  }

  /** Brings the remote's branches (and their tags) into `refs/remotes/origin/*`. */
  async fetch(call: RemoteCall): Promise<void> {
    await runNetworkGit({
      env: this.env,
      args: ["--git-dir", this.path, "fetch", "--quiet", "--prune", "origin"],
      action: "fetching",
      url: this.url,
      ...call,
    });
  }

  /** The remote's default branch (what its HEAD points to), or undefined for an empty remote. */
  async defaultBranch(call: RemoteCall): Promise<string | undefined> {
    const result = await runNetworkGit({
      env: this.env,
      args: ["--git-dir", this.path, "ls-remote", "--symref", "origin", "HEAD"],
      action: "reading the default branch of",
      url: this.url,
      ...call,
      quietFirstAttempt: true,
    });
    const match = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(result.stdout);
    return match?.[1];
  }

  /** The remote's branches as of the last fetch. */
  async remoteBranches(): Promise<string[]> {
    const result = await this.git(["for-each-ref", "--format=%(refname:strip=3)", "refs/remotes/origin/"]);
    return result.stdout.split("\n").filter((name) => name !== "" && name !== "HEAD");
  }

  /** The commits of these refs (exact names) that exist, in one git call. */
  async commitsOf(refs: readonly string[]): Promise<Map<string, string>> {
    const result = await this.git(["for-each-ref", "--format=%(objectname) %(refname)", ...refs]);
    const commits = new Map<string, string>();
    for (const line of result.stdout.split("\n")) {
      const [commit, ref] = line.split(" ");
      // A pattern also matches the refs below it (refs/heads/a matches refs/heads/a/b).
      if (commit && ref && refs.includes(ref)) commits.set(ref, commit);
    }
    return commits;
  }
}
