import type { RunnerEnv } from "./types.js";

/** Retries of a model call when neither the run nor the runner names a count (the agent runner's config.yaml default). */
export const DEFAULT_LLM_RETRIES = 3;

/**
 * The retries of a failed model call an agent may make: `RUNYARD_LLM_RETRY_COUNT` of the run's
 * env, else the runner's (a runner passes its `llm_retry_count` there), else 3. Every adapter
 * caps its CLI with it, so a refused key ends a turn in seconds, not after a CLI's own ten
 * retries. A string is the error to report.
 */
export function llmRetryCount(
  run: Readonly<Record<string, string>>,
  runner: RunnerEnv = {},
): number | string {
  const value = run.RUNYARD_LLM_RETRY_COUNT || runner.RUNYARD_LLM_RETRY_COUNT;
  if (value === undefined || value === "") return DEFAULT_LLM_RETRIES;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 20) {
    return `RUNYARD_LLM_RETRY_COUNT needs a whole number from 0 to 20, not ${value}`;
  }
  return n;
}
