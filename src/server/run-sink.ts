import { RunyardError } from "../core/errors.js";
import { type EventInput, type RunEvent, runEventTypes, type UnnumberedEvent } from "../core/events.js";
import { safeToRunAgain } from "../store/connection-loss.js";
import type { RunLogLimit, RunRecordChange, Store } from "../store/index.js";
import type { EventBus } from "./event-bus.js";

export type { RunLogLimit } from "../store/index.js";

/** Events read at once when catching up with what other writers stored. */
const catchUpPage = 1000;
/** How long a batch waits for a database that went away before its engine gives up (and restarts). */
const storeWaitMs = 10_000;
/**
 * What catching up reads: every type but `step.output`, which no projection of a run's record
 * uses, and which is most of a run's bytes (reading it back parsed each byte of it again).
 */
const projectedTypes = runEventTypes.filter((type) => type !== "step.output");
const projected = new Set<string>(projectedTypes);

/**
 * Where a run's events go on the server: stamped here, numbered and held to the run's log cap by
 * the store (`appendRunEvents`, the one place a server run's seq is given, so any replica may
 * append a run's events alongside the one carrying it), and only then published to followers,
 * so a follower never sees an event that a crash could take back. Writes are chained, so this
 * sink's events land in the order they were emitted.
 */
export class RunSink {
  private chain: Promise<unknown> = Promise.resolve();
  /** Settles once the last write is stored, before its events are projected (see `stored`). */
  private lastStored: Promise<unknown> = Promise.resolve();
  private buffer: UnnumberedEvent[] = [];
  private flushScheduled = false;
  /** A write queued that has not begun: it takes every event emitted until it begins. */
  private waiting: Promise<unknown> | undefined;
  /** Recorded on the run by the first write; the store keeps it from then on. */
  private logLimit: RunLogLimit | undefined;
  private storedSeq: number;
  /** Events up to this seq have been projected, whoever stored them (see `catchUp`). */
  private projectedSeq: number;
  /** Seqs above `projectedSeq` that this sink stored (and projected) itself. */
  private readonly ownSeqs = new Set<number>();
  private begun = false;
  /**
   * Settled (rejected) once a write failed for good: the sink takes no more events, and its run's
   * engine is replaced by one carried on from the stored events (`carrier.lost`).
   */
  private failed: Promise<never> | undefined;

  constructor(
    readonly runId: string,
    /** The run's last stored seq when the sink is made (see `lastSeq`). */
    lastSeq: number,
    private readonly store: Pick<Store, "events">,
    private readonly bus: EventBus,
    /**
     * Projects events: each this sink stores, and on catch-up each other writer's but
     * `step.output`. `recorded`: what they change on the run's record was stored with them.
     */
    private readonly observe: (events: RunEvent[], recorded?: boolean) => Promise<void> | void,
    logLimit: RunLogLimit = { maxBytes: 0, storedBytes: 0 },
    /**
     * The replica carrying the run: events are stored only while it still does (see `fenced`);
     * `lost` when a write failed for good, its events perhaps never stored.
     */
    private readonly carrier?: { id: string; fenced: () => void; lost: () => void },
    /** What a batch of this sink's changes on the run's record, stored in the same transaction. */
    private readonly recordChange?: (events: readonly UnnumberedEvent[]) => RunRecordChange | undefined,
  ) {
    this.storedSeq = lastSeq;
    this.projectedSeq = lastSeq;
    this.logLimit = logLimit;
  }

  /** The highest seq this sink has stored (other writers of the run may have stored past it). */
  get lastSeq(): number {
    return this.storedSeq;
  }

  /** Whether a write failed for good (`fail`): the run's engine is being replaced. */
  get lost(): boolean {
    return this.failed !== undefined;
  }

  /** Whether nothing but `run.queued` and notices was emitted here: the run has begun no work. */
  get quiet(): boolean {
    return !this.begun;
  }

  /** Takes one event; it is stored with the others emitted until its write begins (see `write`). */
  emit = (input: EventInput): void => {
    if (this.failed) return;
    if (input.type !== "run.queued" && input.type !== "notice") this.begun = true;
    this.buffer.push(stamp(input, new Date().toISOString()));
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
    if (this.failed) return this.failed;
    if (this.waiting) return this.waiting;
    if (this.buffer.length === 0) return this.chain;
    this.waiting = this.write();
    return this.waiting;
  }

  private write(): Promise<unknown> {
    let markStored: () => void = () => undefined;
    const stored = new Promise<void>((resolve) => {
      markStored = resolve;
    });
    const next = this.chain.then(async () => {
      if (this.failed) return this.failed;
      // The SQLite store answers synchronously: without this, a backlog of batches is stored in
      // one go of microtasks and `/health` and SSE wait until all of it is done. It also lets
      // what the engine emits in the rest of this turn (a step's end, then its run's) join the
      // batch: one transaction, one write to each follower, one change of the run's record.
      await new Promise((resolve) => setImmediate(resolve));
      this.waiting = undefined;
      const events = this.buffer;
      this.buffer = [];
      if (events.length === 0) return markStored();
      const record = this.recordChange?.(events);
      let appended: RunEvent[];
      let json: string[];
      const giveUpAt = Date.now() + storeWaitMs;
      for (let wait = 250; ; wait = Math.min(wait * 2, 2000)) {
        try {
          ({ events: appended, json } = await this.store.events.appendForRun(this.runId, events, {
            ...(this.carrier ? { carrier: this.carrier.id } : {}),
            ...(this.logLimit ? { logLimit: this.logLimit } : {}),
            ...(record ? { record } : {}),
            // What this replica stored or projected last; another writer's batch since makes the
            // store take the usual way.
            expectedLastSeq: Math.max(this.storedSeq, this.projectedSeq),
          }));
          break;
        } catch (error) {
          // Another replica adopted the run: nothing more is written from here.
          if (error instanceof RunyardError && error.code === "REPLICA_FENCED") this.carrier?.fenced();
          // The database is away (a restart, a failover) and the batch was not stored: it waits
          // for the database a while, the engine behind it. Past that (or when whether it was
          // stored is not known), the run goes on from its stored events once it is back.
          if (!safeToRunAgain(error) || Date.now() + wait > giveUpAt) {
            // Only the database's absence: an error the same events would meet again (a value
            // the store refuses) would have the carried-on engine fail the same way, in a loop.
            if (error instanceof RunyardError && error.code === "STORE_UNAVAILABLE") this.fail(error);
            throw error;
          }
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
      this.logLimit = undefined;
      if (appended.length === 0) return markStored();
      this.storedSeq = Math.max(this.storedSeq, appended.at(-1)?.seq ?? 0);
      for (const event of appended) this.ownSeqs.add(event.seq);
      // What this sink stored right after what was projected needs no catching up.
      while (this.ownSeqs.delete(this.projectedSeq + 1)) this.projectedSeq++;
      this.bus.publish(appended, json);
      markStored();
      await this.observe(appended, record !== undefined);
    });
    this.chain = next.catch(() => undefined);
    // A failed write settles it too, rejecting as `next` does.
    this.lastStored = Promise.race([stored, next]);
    this.lastStored.catch(() => undefined);
    return next;
  }

  /**
   * Projects the run's events other writers stored since the last catch-up (a runner's batches,
   * stored by whichever replica it is connected to), in seq order; they were published to
   * followers by the replica that stored them.
   */
  catchUp(): Promise<void> {
    const next = this.chain.then(() => this.readOthers());
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Projects a batch another writer on this replica has just stored for the run (a runner's, by
   * the job queue): at once when it follows what was projected, as `catchUp` would have read it
   * back; after a gap (events stored elsewhere, not yet projected), by reading as `catchUp` does.
   */
  storedHere(events: readonly RunEvent[]): Promise<void> {
    const next = this.chain.then(async () => {
      const first = events[0]?.seq;
      const last = events.at(-1)?.seq;
      if (first === undefined || last === undefined || last <= this.projectedSeq) return;
      if (first !== this.projectedSeq + 1) return this.readOthers();
      this.projectedSeq = last;
      while (this.ownSeqs.delete(this.projectedSeq + 1)) this.projectedSeq++;
      const others = events.filter((event) => projected.has(event.type));
      if (others.length > 0) await this.observe(others);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Reads and projects what other writers stored since the last projected seq (see `catchUp`). */
  private async readOthers(): Promise<void> {
    // Everything up to the run's last seq is stored once the run's row says so (seqs are given
    // in order, in the transaction that stores them).
    const upTo = (await this.store.events.lastSeq(this.runId)) ?? this.projectedSeq;
    while (this.ownSeqs.delete(this.projectedSeq + 1)) this.projectedSeq++;
    // Nothing stored past what was projected: nothing to read.
    if (upTo <= this.projectedSeq) return;
    for (;;) {
      const page = await this.store.events.list(this.runId, {
        after: this.projectedSeq,
        limit: catchUpPage,
        types: projectedTypes,
      });
      const others = page.filter((event) => !this.ownSeqs.has(event.seq));
      const last = page.at(-1)?.seq ?? this.projectedSeq;
      this.projectedSeq = page.length < catchUpPage ? Math.max(last, upTo) : last;
      for (const seq of this.ownSeqs) if (seq <= this.projectedSeq) this.ownSeqs.delete(seq);
      if (others.length > 0) await this.observe(others);
      if (page.length < catchUpPage) return;
    }
  }

  /**
   * Resolves when everything emitted so far is stored and published, without waiting for its
   * projection into the run's record: a runner's batch must follow the engine's events in seq
   * order, not their projection (`catchUp`, chained after it, keeps that in order).
   */
  stored(): Promise<unknown> {
    void this.flush();
    return this.failed ?? this.lastStored;
  }

  /**
   * A write failed for good: what it held (a run's start, a step's) may never be stored, and
   * every later event would follow a gap. Whoever waits on the sink hears the database is away
   * (a runner's batch is not acked, and comes again to the engine that replaces this one).
   */
  private fail(cause: unknown): void {
    if (this.failed) return;
    const error = new RunyardError(
      "STORE_UNAVAILABLE",
      "a run's events could not be stored; its engine goes on from the stored ones once the database is back",
      { cause },
    );
    this.failed = Promise.reject(error);
    this.failed.catch(() => undefined);
    this.buffer = [];
    this.carrier?.lost();
  }

  /** Resolves when everything emitted so far is stored. */
  async drain(): Promise<void> {
    await this.flush();
    await this.chain;
  }
}

export function stamp(input: EventInput, ts: string): UnnumberedEvent {
  return { ...input, ts } as UnnumberedEvent;
}
