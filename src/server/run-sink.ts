import { RunyardError } from "../core/errors.js";
import { type EventInput, type RunEvent, runEventTypes, type UnnumberedEvent } from "../core/events.js";
import { safeToRunAgain } from "../store/connection-loss.js";
import type { AppendedRunEvents, JobBatchRef, RunLogLimit, RunRecordChange, Store } from "../store/index.js";
import type { EventBus } from "./event-bus.js";

export type { RunLogLimit } from "../store/index.js";

/** Events read at once when catching up with what other writers stored. */
const catchUpPage = 1000;
/** How long a batch waits for a database that went away before its engine gives up (and restarts). */
const storeWaitMs = 10_000;
/** What catching up reads: all but `step.output`, unprojected and most of a run's bytes (parsed again). */
const projectedTypes = runEventTypes.filter((type) => type !== "step.output");
const projected = new Set<string>(projectedTypes);

/** A job's batch stored in the sink's next write, after the engine's events (see `storeWithBatch`). */
interface RidingBatch {
  events: UnnumberedEvent[];
  job: JobBatchRef;
  /** Stored and published (or a duplicate: nothing stored); undefined: the caller stores it itself. */
  settle: (stored: AppendedRunEvents | undefined) => void;
}

/**
 * Where a run's events go on the server: stamped here, numbered and held to the log cap by the store
 * (`appendRunEvents`, the one place a server run's seq is given, so any replica may append alongside
 * the carrier), only then published, so no follower sees an event a crash could take back. Writes are
 * chained, so events land in the order emitted.
 */
export class RunSink {
  private chain: Promise<unknown> = Promise.resolve();
  /** Settles once the last write is stored, before its events are projected (see `stored`). */
  private lastStored: Promise<unknown> = Promise.resolve();
  private buffer: UnnumberedEvent[] = [];
  private flushScheduled = false;
  /** A write queued that has not begun: it takes every event emitted until it begins. */
  private waiting: Promise<unknown> | undefined;
  /** A job's batch the queued write stores with the engine's events, in its transaction. */
  private riding: RidingBatch | undefined;
  /** Recorded on the run by the first write; the store keeps it from then on. */
  private logLimit: RunLogLimit | undefined;
  private storedSeq: number;
  /** Events up to this seq have been projected, whoever stored them (see `catchUp`). */
  private projectedSeq: number;
  /** Seqs above `projectedSeq` that this sink stored (and projected) itself. */
  private readonly ownSeqs = new Set<number>();
  private begun = false;
  /** Rejected once a write failed for good: no more events; the engine is replaced (`carrier.lost`). */
  private failed: Promise<never> | undefined;

  constructor(
    readonly runId: string,
    /** The run's last stored seq when the sink is made (see `lastSeq`). */
    lastSeq: number,
    private readonly store: Pick<Store, "events">,
    private readonly bus: EventBus,
    /** Projects this sink's events, and others' bar `step.output` on catch-up; `recorded`: stored too. */
    private readonly observe: (events: RunEvent[], recorded?: boolean) => Promise<void> | void,
    logLimit: RunLogLimit = { maxBytes: 0, storedBytes: 0 },
    /** Events are stored only while this replica carries the run (`fenced`); `lost`: a write failed. */
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
      // The SQLite store answers synchronously: without this a backlog is stored in one go of microtasks,
      // `/health` and SSE waiting. It also lets the rest of this turn (a step's end, then its run's) join
      // the batch: one transaction, one write to each follower, one change of the run's record.
      await new Promise((resolve) => setImmediate(resolve));
      this.waiting = undefined;
      const events = this.buffer;
      this.buffer = [];
      const riding = this.riding;
      this.riding = undefined;
      if (events.length === 0) {
        riding?.settle(undefined);
        return markStored();
      }
      const record = this.recordChange?.(events);
      if (riding) {
        const merged = await this.writeWithBatch(events, riding, record);
        if (merged) {
          markStored();
          if (merged.length > 0) await this.observe(merged, record !== undefined);
          return;
        }
      }
      let appended: RunEvent[];
      let json: string[];
      const giveUpAt = Date.now() + storeWaitMs;
      for (let wait = 250; ; wait = Math.min(wait * 2, 2000)) {
        try {
          ({ events: appended, json } = await this.store.events.appendForRun(this.runId, events, {
            ...(this.carrier ? { carrier: this.carrier.id } : {}),
            ...(this.logLimit ? { logLimit: this.logLimit } : {}),
            ...(record ? { record } : {}),
            // Another writer's batch since this makes the store take the usual way.
            expectedLastSeq: Math.max(this.storedSeq, this.projectedSeq),
          }));
          break;
        } catch (error) {
          if (error instanceof RunyardError && error.code === "REPLICA_FENCED") this.carrier?.fenced();
          // Database away, batch unstored: wait a while, the engine behind it. Past that (or if unsure
          // whether it was stored), the run goes on from its stored events once the database is back.
          if (!safeToRunAgain(error) || Date.now() + wait > giveUpAt) {
            // Only its absence: an error the same events meet again would fail the next engine in a loop.
            if (error instanceof RunyardError && error.code === "STORE_UNAVAILABLE") this.fail(error);
            throw error;
          }
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
      this.logLimit = undefined;
      if (appended.length === 0) return markStored();
      this.storedOwn(appended);
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
   * Stores a job's batch with the engine's events that a write queued now is to store, in one
   * transaction, the engine's first: the run's and step's starts that a runner's first report
   * stands for and its first output, one write to the store and to each follower. Resolves with
   * what was stored, the batch's part only (published; a "duplicate" stored nothing, the engine's
   * events are then stored on their own). Undefined when no write is queued, another batch rides
   * on it, or the joint write failed: the caller stores the batch itself after `stored()`, as
   * it would any later batch.
   */
  storeWithBatch(events: UnnumberedEvent[], job: JobBatchRef): Promise<AppendedRunEvents | undefined> {
    if (this.failed || this.riding || this.waiting === undefined) return Promise.resolve(undefined);
    return new Promise((settle) => {
      this.riding = { events, job, settle };
    });
  }

  /**
   * The queued write's events and the batch riding on it, stored in one transaction; the engine's
   * part numbered, published and recorded as `write` does. Undefined when the store refused the
   * pair (the write then stores the engine's events on its own, the caller the batch).
   */
  private async writeWithBatch(
    events: UnnumberedEvent[],
    riding: RidingBatch,
    record: RunRecordChange | undefined,
  ): Promise<RunEvent[] | undefined> {
    let stored: AppendedRunEvents;
    try {
      stored = await this.store.events.appendForRun(this.runId, riding.events, {
        lead: events,
        job: riding.job,
        ...(this.carrier ? { carrier: this.carrier.id } : {}),
        ...(this.logLimit ? { logLimit: this.logLimit } : {}),
        ...(record ? { record } : {}),
      });
    } catch (error) {
      riding.settle(undefined);
      // Unsure whether it committed (the database went away at the commit): as `write` would, the
      // engine is replaced and goes on from what was stored.
      if (error instanceof RunyardError && error.code === "STORE_UNAVAILABLE" && !safeToRunAgain(error)) {
        this.fail(error);
        throw error;
      }
      // Rolled back (fenced, the batch's own fault, the database away before the commit, any
      // other error): each part goes its own way, as before they were joined, so a runner's batch
      // fails only itself; a fenced or absent database is met, and said, by the separate write.
      return undefined;
    }
    if (stored.duplicate) {
      riding.settle(stored);
      return undefined;
    }
    this.logLimit = undefined;
    const leading = stored.leading ?? 0;
    const own = stored.events.slice(0, leading);
    this.storedOwn(own);
    this.bus.publish(stored.events, stored.json);
    riding.settle({
      duplicate: false,
      events: stored.events.slice(leading),
      json: stored.json.slice(leading),
    });
    return own;
  }

  /** Takes note of events this sink stored (numbered, in seq order), as projected once `observe` has them. */
  private storedOwn(own: readonly RunEvent[]): void {
    this.storedSeq = Math.max(this.storedSeq, own.at(-1)?.seq ?? 0);
    for (const event of own) this.ownSeqs.add(event.seq);
    // What this sink stored right after what was projected needs no catching up.
    while (this.ownSeqs.delete(this.projectedSeq + 1)) this.projectedSeq++;
  }

  /**
   * Projects, in seq order, the run's events other writers stored since the last catch-up (a runner's
   * batches, by its replica, which published them).
   */
  catchUp(): Promise<void> {
    const next = this.chain.then(() => this.readOthers());
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Projects a batch the job queue just stored here for the run: at once when it follows what was
   * projected; after a gap (events stored elsewhere), by reading as `catchUp` does.
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
    // Seqs are given in order, in the storing transaction: all up to the row's last seq is stored.
    const upTo = (await this.store.events.lastSeq(this.runId)) ?? this.projectedSeq;
    while (this.ownSeqs.delete(this.projectedSeq + 1)) this.projectedSeq++;
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
   * Resolves when all emitted so far is stored and published, not projected: a runner's batch must
   * follow the engine's events in seq order, not their projection (`catchUp`, chained after, keeps it).
   */
  stored(): Promise<unknown> {
    void this.flush();
    return this.failed ?? this.lastStored;
  }

  /**
   * A write failed for good: what it held may never be stored, and later events would follow a gap.
   * Waiters hear the database is away (a runner's batch is not acked, and comes again to the next engine).
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
    // Its caller stores it itself, and hears that the database is away.
    this.riding?.settle(undefined);
    this.riding = undefined;
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
