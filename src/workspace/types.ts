/**
 * Workspaces (docs/workspaces.md): the agent runner's repo pool. Git is the CLI with argument arrays;
 * a token reaches git only through GIT_ASKPASS, never a URL, an argument, a log line or an event.
 */

export interface GitCredentials {
  /** Given to git by GIT_ASKPASS as the password (username `x-access-token` unless set). */
  token: string;
  username?: string;
}

export interface AllocateRequest {
  /** A URL git can fetch (https, ssh, file path of a bare repo). Never holds credentials. */
  repoUrl: string;
  /** Branch to start from; the remote's default branch when absent. */
  base?: string;
  /** The new branch the run works on (refused if it exists on the remote, unless `reuse`). */
  branch: string;
  /**
   * The worktree's stable key (a run id, or a conversation id shared by follow-ups): its path is
   * `<root>/worktrees/<key>`, so a session some CLIs key on the working directory finds it again.
   */
  key: string;
  /**
   * A follow-up: check out `branch` as the key's last turn kept it on the runner, or as the remote has
   * it, not cut anew. Neither (kept ones expire `conversationKeepMs` after use): WORKSPACE_BRANCH_EXPIRED.
   */
  reuse?: boolean;
  credentials?: GitCredentials;
  /** Commit author and committer. */
  author?: { name: string; email: string };
  signal?: AbortSignal;
  /** Progress lines for the run's log ("fetching https://... (attempt 2 of 4)"). */
  onProgress?: (line: string) => void;
}

export interface DiffStats {
  files: number;
  insertions: number;
  deletions: number;
}

export interface Workspace {
  readonly path: string;
  readonly branch: string;
  readonly base: string;
  /** The commit the branch was cut from. */
  readonly baseCommit: string;
  /** Stages everything and commits; null when nothing changed. */
  commitAll(message: string): Promise<{ commit: string } | null>;
  /** The branch against its base commit, committed or not: a patch and its stats. */
  diff(): Promise<{ patch: string; stats: DiffStats }>;
  /** Pushes the branch to the repo's remote (retried with backoff). */
  push(): Promise<void>;
  /** Keeps the branch for the key's follow-up, then removes the worktree and task repo. Idempotent. */
  release(): Promise<void>;
}

/** Retry counts of the agent runner's config.yaml (`git_retry_count`, `network_retry_count`). */
export interface RetryPolicy {
  gitRetries: number;
  /** First delay; doubles each attempt (with jitter), capped at 30 s. */
  baseDelayMs: number;
}
