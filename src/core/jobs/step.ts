import { z } from "zod";
import type { EventInput } from "../events.js";
import { StepAttemptRequest, StepAttemptResult } from "../step-attempt.js";

/**
 * Job kind `step`: one attempt of one workflow step on one host. The runner sends its output
 * as `step.output` events (masked on the runner) and ends with the attempt's result.
 */
export const StepJob = z.object({
  job_id: z.string(),
  kind: z.literal("step"),
  payload: StepAttemptRequest,
});
export type StepJob = z.infer<typeof StepJob>;

export const StepJobResult = StepAttemptResult.extend({ kind: z.literal("step") });
export type StepJobResult = z.infer<typeof StepJobResult>;

/** Whether a runner may report `event` for this step job: output and notices of its own step and host. */
export function stepJobMaySend(job: StepJob, event: EventInput): boolean {
  if (event.type !== "step.output" && event.type !== "notice") return false;
  return event.step === job.payload.step && event.host === job.payload.host;
}
