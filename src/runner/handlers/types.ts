import type { EventInput } from "../../core/events.js";
import type { JobKind, JobOf, JobResultOf } from "../../core/jobs/index.js";
import type { BotReply } from "../../core/protocol.js";

/** What a handler gets besides its job: where its events go, and the signal that stops it. */
export interface JobIo {
  /** Reports one spine event; the daemon batches, numbers and resends until acked. */
  emit(event: EventInput): void;
  /** Aborted when the server cancels or drops the job, or the runner cuts it at shutdown. */
  signal: AbortSignal;
}

/**
 * The abort reason a job's signal carries when its runner stops and lets the job go without
 * ending its work (a bot's container runs on); any other abort means stop the work.
 */
export const detachReason = "runner-detached";

/** The answer to a bot call that reached no bot. */
export function botErrorReply(status: number, code: string, message: string): BotReply {
  return { status, headers: {}, body_base64: "", error: { code, message } };
}

/** Does the jobs of one kind on a runner. Failures of the work are results, never rejections. */
export interface JobHandler<K extends JobKind> {
  run(job: JobOf<K>, io: JobIo): Promise<JobResultOf<K>>;
  /**
   * The jobs it holds whose work has not begun (an agent turn waiting for another turn of its
   * conversation), by job id: a stopping runner gives these up at once, saying they never started.
   */
  waiting?(): ReadonlySet<string>;
}

/**
 * One handler per job kind. Every runner runs steps; a runner without an agent handler (tests,
 * benchmarks) advertises no agents, so it is never offered an agent job.
 */
export type JobHandlers = { step: JobHandler<"step"> } & { [K in Exclude<JobKind, "step">]?: JobHandler<K> };
