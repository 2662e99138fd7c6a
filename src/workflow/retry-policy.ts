/**
 * When a failed attempt of a step is tried again, and after how long: the step's `retry:` policy,
 * or the short form `retry_count` / `retry_delay_seconds` it has always had (exponential back-off
 * from the delay, every failure retried).
 */
import type { ErrorInfo, StepStatus } from "../core/events.js";
import { type RetryPolicy, type RetryReason, retryReasons, type Step } from "./model.js";

/** The policy a step runs under: its `retry:`, else the short form's. */
export function retryPolicyOf(step: Pick<Step, "retry" | "retryCount" | "retryDelaySeconds">): RetryPolicy {
  return (
    step.retry ?? {
      attempts: step.retryCount + 1,
      backoff: "exponential",
      delaySeconds: step.retryDelaySeconds,
      on: [...retryReasons],
    }
  );
}

/** What kind of failure an attempt's end was; undefined when it succeeded or was canceled. */
export function failureReason(
  status: StepStatus | undefined,
  error: ErrorInfo | undefined,
): RetryReason | undefined {
  if (status === "canceled" || (status === "success" && !error)) return undefined;
  if (status === "timeout" || error?.code === "TIMEOUT") return "timeout";
  if (error?.code === "RUNNER_LOST") return "runner_lost";
  return "error";
}

/** The wait before attempt `attempt + 1`, in milliseconds. */
export function retryDelayMs(policy: RetryPolicy, attempt: number): number {
  const base = policy.delaySeconds * (policy.backoff === "exponential" ? 2 ** (attempt - 1) : 1);
  const capped = policy.maxDelaySeconds === undefined ? base : Math.min(base, policy.maxDelaySeconds);
  return Math.round(capped * 1000);
}

export type RetryPlan = { retry: true; delayMs: number } | { retry: false; why?: string };

/**
 * Whether attempt `attempt` (which failed for `reason`, exiting `exitCode`) is tried again. `why`
 * says, for the run's events, why a failure the step could have retried was not.
 */
export function retryPlan(
  policy: RetryPolicy,
  attempt: number,
  reason: RetryReason,
  exitCode: number | null,
): RetryPlan {
  if (attempt >= policy.attempts) return { retry: false };
  if (!policy.on.includes(reason)) {
    return { retry: false, why: `not retried: ${reason} is not in retry.on (${policy.on.join(", ")})` };
  }
  if (reason === "error" && policy.onExitCodes) {
    if (exitCode === null || !policy.onExitCodes.includes(exitCode)) {
      const exited = exitCode === null ? "it has no exit code" : `exit code ${exitCode}`;
      return {
        retry: false,
        why: `not retried: ${exited} is not in retry.on_exit_codes (${policy.onExitCodes.join(", ")})`,
      };
    }
  }
  return { retry: true, delayMs: retryDelayMs(policy, attempt) };
}
