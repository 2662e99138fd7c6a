import { attemptEndedEarly } from "../../core/attempt-ended-early.js";
import type { StepJob, StepJobResult } from "../../core/jobs/step.js";
import type { StepRunner } from "../../core/step-attempt.js";
import type { JobHandler, JobIo } from "./types.js";

/** Runs `step` jobs: one step attempt on this machine, its output sent as `step.output` events. */
export class StepJobHandler implements JobHandler<"step"> {
  constructor(private readonly stepRunner: StepRunner) {}

  async run(job: StepJob, io: JobIo): Promise<StepJobResult> {
    const { step, host } = job.payload;
    const result = await this.stepRunner
      .runAttempt(job.payload, {
        signal: io.signal,
        onOutput: (stream, data) => io.emit({ type: "step.output", step, host, stream, data }),
      })
      .catch((error: unknown) =>
        attemptEndedEarly("failed", {
          code: "INTERNAL",
          message: error instanceof Error ? error.message : String(error),
        }),
      );
    return { kind: "step", ...result };
  }
}
