import type {
  StepAttemptRequest,
  StepAttemptResult,
  StepOutputSink,
  StepRunner,
} from "../core/step-attempt.js";
import { runStepAttempt } from "./step-attempt.js";
import type { Executor } from "./types.js";

/** Runs step attempts on this machine with `executor` (see createExecutor). */
export class LocalStepRunner implements StepRunner {
  constructor(
    private readonly executor: Executor,
    private readonly options: {
      killGraceMs: number;
      /** Values masked in every attempt (e.g. the runner's own token). */
      maskValues?: string[];
    },
  ) {}

  runAttempt(
    request: StepAttemptRequest,
    io: { onOutput: StepOutputSink; signal: AbortSignal },
  ): Promise<StepAttemptResult> {
    return runStepAttempt(this.executor, request, {
      ...this.options,
      signal: io.signal,
      onOutput: io.onOutput,
    });
  }
}
