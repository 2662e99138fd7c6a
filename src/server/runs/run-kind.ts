import type { RunEvent } from "../../core/events.js";
import type { RunRecord } from "../../store/index.js";
import type { RunSink } from "../run-sink.js";

/** A run the server is carrying out now, as its kind's module sees it. */
export interface ActiveRun {
  readonly record: RunRecord;
  /** Where the run's events go: numbered, stored, projected and published there. */
  readonly sink: RunSink;
  /** Aborted when the run is canceled. */
  readonly signal: AbortSignal;
  /** Aborted as the server stops; the run resumes later, its waits holding no timer (workflow/halt.ts). */
  readonly halt: AbortSignal;
  /** The run's stored events when it is carried on after a restart; empty for a new run. */
  readonly resumed: readonly RunEvent[];
  /** The first time a runner (or agent-server) takes its work, the run is running. */
  markStarted(runnerId: string): void;
}

/** What a new run of some kind stores, once its module has checked the submitted spec. */
export interface PreparedRun {
  name: string;
  /** Stored encrypted at rest; what the module needs to start or resume the run. */
  spec: unknown;
  /** The variables users see, masked. */
  vars: Record<string, string>;
  /** The concurrency group the run takes turns in, expanded; absent: none. */
  concurrency_group?: string;
}

/**
 * One kind of run on the server (workflow, agent, bot): the only code that knows what the kind's
 * spec means. The run service owns everything else (records, events, cancel, recovery).
 */
export interface RunKindModule {
  /**
   * Does the run's work until its `run.finished`, emitting its first events before it returns the
   * promise. Rejects only when the run cannot be carried out at all.
   */
  start(run: ActiveRun): Promise<void>;
}
