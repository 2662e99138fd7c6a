import type { EventInput } from "../../core/events.js";
import type { JobKind, JobOf, JobResultOf } from "../../core/jobs/index.js";

/** What a handler gets besides its job: where its events go, and the signal that stops it. */
export interface JobIo {
  /** Reports one spine event; the daemon batches, numbers and resends until acked. */
  emit(event: EventInput): void;
  /** Aborted when the server cancels or drops the job, or the runner cuts it at shutdown. */
  signal: AbortSignal;
}

/** Does the jobs of one kind on a runner. Failures of the work are results, never rejections. */
export interface JobHandler<K extends JobKind> {
  run(job: JobOf<K>, io: JobIo): Promise<JobResultOf<K>>;
}

/**
 * One handler per job kind. Every runner runs steps; a runner without an agent handler (tests,
 * benchmarks) advertises no agents, so it is never offered an agent job.
 */
export type JobHandlers = { step: JobHandler<"step"> } & { [K in Exclude<JobKind, "step">]?: JobHandler<K> };
