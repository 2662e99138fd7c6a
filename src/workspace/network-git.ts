import { setTimeout as pause } from "node:timers/promises";
import { RunyardError } from "../core/errors.js";
import { withAskpass } from "./askpass.js";
import { type GitResult, runGit } from "./git.js";
import { classifyGitFailure, displayUrl, maskGitOutput } from "./git-failure.js";
import type { GitCredentials, RetryPolicy } from "./types.js";

/** The longest wait between two attempts (the agent runner's backoff). */
export const MAX_RETRY_DELAY_MS = 30_000;

export interface NetworkGitCall {
  env: Record<string, string>;
  args: readonly string[];
  cwd?: string;
  /** What the progress line says git is doing ("fetching", "pushing to"). */
  action: string;
  url: string;
  credentials?: GitCredentials;
  retry: RetryPolicy;
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
  /** Say nothing of the first attempt (a side step of another that is announced); retries still show. */
  quietFirstAttempt?: boolean;
}

/**
 * The wait before attempt `attempt + 1`: the base delay doubled per attempt, capped, with
 * jitter (between half and all of it) so eight runs that failed together do not retry together.
 */
export function retryDelayMs(attempt: number, policy: RetryPolicy, random = Math.random): number {
  const full = Math.min(MAX_RETRY_DELAY_MS, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(full * (0.5 + random() * 0.5));
}

/**
 * Runs a git command that talks to the remote, retrying failures that look transient (network,
 * 5xx, a hung-up remote) with backoff. Auth failures and rejected pushes are final at once:
 * retrying them only repeats the answer (and may lock the account).
 */
export async function runNetworkGit(call: NetworkGitCall): Promise<GitResult> {
  const attempts = Math.max(0, call.retry.gitRetries) + 1;
  const url = displayUrl(call.url);
  const secrets = call.credentials ? [call.credentials.token] : [];
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1 || !call.quietFirstAttempt) {
      call.onProgress?.(`${call.action} ${url} (attempt ${attempt} of ${attempts})`);
    }
    const result = await withAskpass(call.credentials, (askpassEnv) =>
      runGit(call.env, call.args, { cwd: call.cwd, env: askpassEnv, signal: call.signal }),
    );
    if (result.code === 0) return result;
    const reason = maskGitOutput(result.stderr, secrets);
    const kind = classifyGitFailure(result.stderr);
    switch (kind) {
      case "auth":
        throw new RunyardError("WORKSPACE_AUTH", `git could not authenticate to ${url}: ${reason}`);
      case "rejected":
        throw new RunyardError("WORKSPACE_PUSH_REJECTED", `the push to ${url} was rejected: ${reason}`);
      case "other":
        throw new RunyardError("WORKSPACE_GIT_FAILED", `${call.action} ${url} failed: ${reason}`);
      case "transient":
        if (attempt >= attempts) {
          throw new RunyardError(
            "WORKSPACE_UNREACHABLE",
            `${call.action} ${url} failed ${attempts} times; the last time: ${reason}`,
          );
        }
        break;
    }
    const delay = retryDelayMs(attempt, call.retry);
    call.onProgress?.(`${call.action} ${url} failed (${lastLine(reason)}); retrying in ${delay} ms`);
    await pause(delay, undefined, { signal: call.signal }).catch(() => {
      throw new RunyardError("CANCELED", "canceled while waiting to retry git");
    });
  }
}

function lastLine(text: string): string {
  return text.split("\n").pop() ?? "";
}
