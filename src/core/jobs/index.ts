import { z } from "zod";
import type { ErrorInfo, EventInput } from "../events.js";
import { assertExhaustive } from "../exhaustive.js";
import { attemptEndedEarly } from "../step-attempt.js";
import { StepJob, StepJobResult, stepJobMaySend } from "./step.js";

/**
 * Every kind of job a runner can be given (DESIGN.md section 6), one schema file each. Adding
 * a kind: a file beside `step.ts`, one member in each union below, one case in each switch, and
 * a handler in `src/runner/handlers/`. The compiler points at every place that needs it.
 */
export const Job = z.discriminatedUnion("kind", [StepJob]);
export type Job = z.infer<typeof Job>;
export type JobKind = Job["kind"];

export const JobResult = z.discriminatedUnion("kind", [StepJobResult]);
export type JobResult = z.infer<typeof JobResult>;
export type JobResultOf<K extends JobKind> = Extract<JobResult, { kind: K }>;
export type JobOf<K extends JobKind> = Extract<Job, { kind: K }>;

/** Whether a runner holding `job` may report `event` into the job's run. */
export function jobMaySend(job: Job, event: EventInput): boolean {
  switch (job.kind) {
    case "step":
      return stepJobMaySend(job, event);
    default:
      return assertExhaustive(job.kind, "job kind");
  }
}

/** What a log line about a job names besides its id: the run, and where in it the job is. */
export function jobLogFields(job: Job): Record<string, string | number> {
  switch (job.kind) {
    case "step": {
      const { run_id, step, host, attempt } = job.payload;
      return { runId: run_id, step, host, attempt };
    }
    default:
      return assertExhaustive(job.kind, "job kind");
  }
}

/** The result of a job that ended without its runner's word: lost with it, or canceled first. */
export function jobEndedEarly(kind: JobKind, status: "failed" | "canceled", error: ErrorInfo): JobResult {
  switch (kind) {
    case "step":
      return { kind, ...attemptEndedEarly(status, error) };
    default:
      return assertExhaustive(kind, "job kind");
  }
}
