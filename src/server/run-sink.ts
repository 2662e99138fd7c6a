import { RunyardError } from "../core/errors.js";
import { type EventInput, EventSequencer, type RunEvent } from "../core/events.js";
import type { Store } from "../store/index.js";
import type { EventBus } from "./event-bus.js";

/** How much of a run's output the store keeps. */
export interface RunLogLimit {
  /** Output bytes (`step.output` data, UTF-8) stored per run at most; 0 means no cap. */
  maxBytes: number;
  /** Output bytes the run stored before this sink (a run resumed after a restart). */
  storedBytes: number;
  /**
   * Keep the newest output instead of the first (a bot's run, which lasts its whole life and
   * whose latest lines are what `bot logs` is for): past the cap the oldest output is deleted.
   */
  rolling?: boolean;
}

/**
 * The run's stored log cap. Past it no `step.output` is stored (the first event that would
 * cross it neither), so the log is an unbroken beginning; what was cut is counted per step and
 * said in one notice when the step finishes. Only the store is spared: a step's `output_path`
 * files on its host keep everything.
 */
class RunLogCap {
  private stored: number;
  private cutting = false;
  /** `step\0host` -> bytes not stored. */
  private readonly cut = new Map<string, { step: string; host: string; bytes: number }>();

  constructor(private readonly limit: RunLogLimit) {
    this.stored = limit.storedBytes;
  }

  /** Whether this output is stored. */
  admit(step: string, host: string, data: string): boolean {
    if (this.limit.maxBytes <= 0) return true;
    const bytes = Buffer.byteLength(data, "utf8");
    if (this.limit.rolling) {
      this.stored += bytes;
      return true;
    }
    if (!this.cutting && this.stored + bytes <= this.limit.maxBytes) {
      this.stored += bytes;
      return true;
    }
    this.cutting = true;
    const key = `${step}\u0000${host}`;
    const entry = this.cut.get(key) ?? { step, host, bytes: 0 };
    entry.bytes += bytes;
    this.cut.set(key, entry);
    return false;
  }

  /**
   * For a rolling log past its cap: how many bytes of the oldest output to delete, bringing the
   * log down to three quarters of the cap so deletes stay rare.
   */
  overflow(): number {
    if (!this.limit.rolling || this.limit.maxBytes <= 0 || this.stored <= this.limit.maxBytes) return 0;
    return this.stored - Math.floor(this.limit.maxBytes * 0.75);
  }

  /** Output deleted from the store: no longer counted. */
  dropped(bytes: number): void {
    this.stored = Math.max(0, this.stored - bytes);
  }

  /** The notices owed when `input` is emitted: for its step, or for all at the run's end. */
  noticesBefore(input: EventInput): EventInput[] {
    if (this.cut.size === 0) return [];
    let ended: Array<{ step: string; host: string; bytes: number }> = [];
    let outputPath: string | undefined;
    if (input.type === "step.finished") {
      const key = `${input.step}\u0000${input.host}`;
      const entry = this.cut.get(key);
      if (entry) ended = [entry];
      this.cut.delete(key);
      outputPath = input.output_path;
    } else if (input.type === "run.finished") {
      ended = [...this.cut.values()];
      this.cut.clear();
    }
    return ended.map(({ step, host, bytes }) => ({
      type: "notice",
      level: "warn",
      step,
      host,
      message:
        `the run's stored log reached its cap of ${this.limit.maxBytes} bytes: ${bytes} more bytes of output of ` +
        `step "${step}" on ${host} were not stored; ` +
        (outputPath
          ? `the step's output_path files keep everything (${outputPath})`
          : "set args.output_path to keep a step's full output on its host"),
    }));
  }
}

/**
 * Where a run's events go on the server: numbered here (the one place a server run's seq is
 * assigned), stored, and only then published to followers, so a follower never sees an event
 * that a crash could take back. Writes are chained, so they land in seq order.
 */
export class RunSink {
  private readonly sequencer: EventSequencer;
  private chain: Promise<unknown> = Promise.resolve();
  private buffer: RunEvent[] = [];
  private collecting: RunEvent[] | undefined;
  private flushScheduled = false;
  private readonly logCap: RunLogCap;

  constructor(
    readonly runId: string,
    lastSeq: number,
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly observe: (events: RunEvent[]) => Promise<void> | void,
    logLimit: RunLogLimit = { maxBytes: 0, storedBytes: 0 },
    /** The replica carrying the run: events are stored only while it still does (see `fenced`). */
    private readonly carrier?: { id: string; fenced: () => void },
  ) {
    this.sequencer = new EventSequencer(runId, lastSeq);
    this.logCap = new RunLogCap(logLimit);
  }

  /**
   * Takes one event; it is stored with the others emitted in the same tick. Output past the
   * run's log cap is dropped before it is given a seq, so the stored log has no gaps.
   */
  emit = (input: EventInput): void => {
    if (input.type === "step.output" && !this.logCap.admit(input.step, input.host, input.data)) return;
    for (const notice of this.logCap.noticesBefore(input)) this.emit(notice);
    const event = this.sequencer.next(input);
    if (this.collecting) {
      this.collecting.push(event);
      return;
    }
    this.buffer.push(event);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        void this.flush();
      });
    }
  };

  /** Stores what was emitted so far; resolves once it is stored. */
  flush(): Promise<unknown> {
    if (this.buffer.length === 0) return this.chain;
    const events = this.buffer;
    this.buffer = [];
    return this.write(events);
  }

  /**
   * Stores a runner's batch of events in one transaction with the batch number, so the store
   * records which batches it has; they pass the log cap like any event. The caller skips
   * batches it has seen before calling, so no seq is spent on a duplicate.
   */
  jobBatch(jobId: string, batch: number, inputs: readonly EventInput[]): Promise<unknown> {
    void this.flush();
    const events: RunEvent[] = [];
    this.collecting = events;
    try {
      for (const input of inputs) this.emit(input);
    } finally {
      this.collecting = undefined;
    }
    return this.write(events, { id: jobId, seq: batch });
  }

  private write(events: RunEvent[], job?: { id: string; seq: number }): Promise<unknown> {
    const next = this.chain.then(async () => {
      if (events.length === 0 && !job) return;
      // The SQLite store answers synchronously: without this, a backlog of batches is stored in
      // one go of microtasks and `/health` and SSE wait until all of it is done.
      await new Promise((resolve) => setImmediate(resolve));
      try {
        await this.store.events.append(events, {
          ...(job ? { job } : {}),
          ...(this.carrier ? { carrier: this.carrier.id } : {}),
        });
      } catch (error) {
        // Another replica adopted the run: nothing more is written from here.
        if (error instanceof RunyardError && error.code === "REPLICA_FENCED") this.carrier?.fenced();
        throw error;
      }
      this.bus.publish(events);
      await this.observe(events);
      const overflow = this.logCap.overflow();
      if (overflow > 0) this.logCap.dropped(await this.store.events.dropOldestOutput(this.runId, overflow));
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Resolves when everything emitted so far is stored. */
  async drain(): Promise<void> {
    await this.flush();
    await this.chain;
  }
}
