// Apart from step-attempt.ts's schemas, so that a local run builds such a result without zod.
import type { ErrorInfo } from "./events.js";
import type { StepAttemptResult } from "./step-attempt.js";

/** The result of an attempt that ended before or without running anything of its own. */
export function attemptEndedEarly(
  status: "failed" | "canceled",
  error: ErrorInfo,
  durationMs = 0,
): StepAttemptResult {
  return {
    status,
    exit_code: null,
    exports: {},
    secret_exports: [],
    duration_ms: durationMs,
    memory_peak_bytes: 0,
    cpu_ms: 0,
    output_files: [],
    warnings: [],
    error,
  };
}
