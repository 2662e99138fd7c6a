/**
 * The spine's plain functions, apart from the schemas in events.ts: what stamps and reads events
 * needs no validator, so `runyard run` does not load zod for it.
 */
import type { EventInput, EventOf, RunEvent, StepSummary } from "./events.js";

/** Numbers a run's events 1, 2, 3 ... and stamps them; the one place seq is assigned. */
export class EventSequencer {
  private seq: number;
  constructor(
    readonly runId: string,
    startAfter = 0,
  ) {
    this.seq = startAfter;
  }
  next(input: EventInput): RunEvent {
    this.seq += 1;
    return { ...input, run_id: this.runId, seq: this.seq, ts: new Date().toISOString() } as RunEvent;
  }
  get lastSeq(): number {
    return this.seq;
  }
}

/**
 * A finished step's summary, as the run record and a resumed engine both read it from the
 * `step.finished` event: one function, so they never disagree on what is kept.
 */
export function stepSummaryOf(event: Omit<EventOf<"step.finished">, "run_id" | "seq">): StepSummary {
  return {
    name: event.step,
    host: event.host,
    status: event.status,
    exit_code: event.exit_code,
    attempts: event.attempts,
    duration_ms: event.duration_ms,
    ...(event.memory_peak_bytes !== undefined ? { memory_peak_bytes: event.memory_peak_bytes } : {}),
    ...(event.cpu_ms !== undefined ? { cpu_ms: event.cpu_ms } : {}),
    ...(event.error ? { error: event.error } : {}),
    ended_at: event.ts,
    ...(event.reason !== undefined ? { reason: event.reason } : {}),
    ...(event.kept_from !== undefined ? { kept_from: event.kept_from } : {}),
  };
}
