import { createHash } from "node:crypto";
import { errorInfo } from "../core/errors.js";
import { assertExhaustive } from "../core/exhaustive.js";
import { Job, JobResult, jobEndedEarly } from "../core/jobs/index.js";
import type { StepJobResult } from "../core/jobs/step.js";
import type { StepAttemptRequest, StepAttemptResult } from "../core/step-attempt.js";
import type { JobLoss, JobRecord } from "../store/index.js";

/** A stored job read back as the typed job it was made from; undefined when it no longer parses. */
export function readJob(record: JobRecord): Job | undefined {
  const parsed = Job.safeParse({ job_id: record.id, kind: record.type, payload: record.payload });
  return parsed.success ? parsed.data : undefined;
}

/** A job id that the same attempt always gets, so a resumed engine finds its job again. */
export function jobIdFor(request: StepAttemptRequest): string {
  return stepJobId(request.run_id, request.step, request.host, request.attempt);
}

/** The job id of one attempt of a step on a host (`jobIdFor`), from its parts. */
export function stepJobId(runId: string, step: string, host: string, attempt: number): string {
  const hash = createHash("sha256").update(`${step}\u0000${host}`).digest("hex").slice(0, 12);
  return `job_${runId}_${hash}_${attempt}`;
}

/** The result of a job that ended before its runner reported one: lost with its runner, or canceled. */
export function endedEarly(job: Job, code: "RUNNER_LOST" | "CANCELED", message: string): JobResult {
  return jobEndedEarly(job, code === "CANCELED" ? "canceled" : "failed", errorInfo(code, message));
}

/** A step attempt's result from a job result, as the engine's StepRunner gives it. */
export function stepResult(result: JobResult): StepAttemptResult {
  switch (result.kind) {
    case "step": {
      const { kind: _kind, ...attempt } = result satisfies StepJobResult;
      return attempt;
    }
    case "agent":
    case "bot":
      throw new Error(`a ${result.kind} job's result came back for a step attempt`);
    default:
      return assertExhaustive(result, "job kind");
  }
}

/** A result of another kind than the job's cannot be read as the job's result. */
export function wrongKind(job: Job, reported: JobResult): JobResult {
  return jobEndedEarly(job, "failed", {
    code: "INTERNAL",
    message: `the runner sent a ${reported.kind} result for a ${job.kind} job`,
  });
}

/** Why a lost job's row says it was lost; a row stored without the reason says only which runner. */
export function lossOf(record: JobRecord): JobLoss {
  const loss = record.result as Partial<JobLoss> | null;
  return typeof loss?.message === "string" && typeof loss.taken_up === "boolean"
    ? { message: loss.message, taken_up: loss.taken_up }
    : { message: `runner ${record.runner_id} was lost`, taken_up: false };
}

/** The outcome an ended job's row holds: its stored result, or RUNNER_LOST and why. */
export function resultOf(job: Job, record: JobRecord): JobResult {
  if (record.status === "lost") return endedEarly(job, "RUNNER_LOST", lossOf(record).message);
  const stored = JobResult.safeParse(record.result);
  return stored.success
    ? stored.data
    : endedEarly(job, "RUNNER_LOST", "the stored result of this job is unreadable");
}
