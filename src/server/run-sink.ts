import { type EventInput, EventSequencer, type RunEvent } from "../core/events.js";
import type { Store } from "../store/types.js";
import type { EventBus } from "./event-bus.js";

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

  constructor(
    readonly runId: string,
    lastSeq: number,
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly observe: (events: RunEvent[]) => Promise<void> | void,
  ) {
    this.sequencer = new EventSequencer(runId, lastSeq);
  }

  /** Takes one event; it is stored with the others emitted in the same tick. */
  emit = (input: EventInput): void => {
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
   * Runs `produce`, which emits events synchronously, and stores them in one transaction with
   * the runner's batch number, so the store records which batches it has. The caller skips
   * batches it has seen before calling, so no seq is spent on a duplicate.
   */
  jobBatch(jobId: string, batch: number, produce: () => void): Promise<unknown> {
    void this.flush();
    const events: RunEvent[] = [];
    this.collecting = events;
    try {
      produce();
    } finally {
      this.collecting = undefined;
    }
    return this.write(events, { id: jobId, seq: batch });
  }

  private write(events: RunEvent[], job?: { id: string; seq: number }): Promise<unknown> {
    const next = this.chain.then(async () => {
      if (events.length === 0 && !job) return;
      await this.store.appendEvents(events, job ? { job } : {});
      this.bus.publish(events);
      await this.observe(events);
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
