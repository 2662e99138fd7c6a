import { errorInfo, RunyardError } from "../core/errors.js";
import type { EventInput } from "../core/events.js";
import { type Job, type JobResult, jobEndedEarly, jobHost, jobMaySend } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import type { HeldJob, RunnerInfo } from "../core/protocol.js";
import type { JobLoss, JobRecord, Store } from "../store/index.js";
import { halted } from "../workflow/halt.js";
import { HostPins } from "./host-pins.js";
import {
  type Claimed,
  claimJob,
  type Inventory,
  LeaseChecks,
  type LeaseHolder,
  takeInventory,
} from "./job-leases.js";
import type { HostPlacement, JobQueueOptions, RunnerLinks } from "./job-queue-options.js";
import { endedEarly, lossOf, readJob, resultOf, wrongKind } from "./job-records.js";
import { BackoffOffers, maxJobRefusals, refusalBackoff, refusedError } from "./job-refusals.js";
import { JobStartOrder } from "./job-start-order.js";
import { type RunSink, stamp } from "./run-sink.js";

/** An engine waiting for one job's result. */
interface Waiter {
  job: Job;
  sink: RunSink;
  resolve: (result: JobResult) => void;
  /** Called when a runner takes the job up (after the run's `run.started`). */
  started: (() => void) | undefined;
  /** Whether the engine has learnt that a runner took the job up. */
  accepted: boolean;
  /** Whether its row is stored and was queued then (a run waiting only on such jobs may be parked). */
  enqueued: boolean;
  /** Whether its row was stored from `job` here (not found stored by an earlier engine of the run). */
  madeHere: boolean;
}

/** Waited jobs whose rows the sweep reads in one statement. */
const sweepChunk = 500;

/**
 * The one owner of the job lifecycle (docs/architecture.md, "The life of a run"): queued -> assigned ->
 * running -> done | lost, and assigned -> queued when a runner gives a job back. It alone calls the store's
 * job verbs; runner sockets feed it, engines wait on it; each batch of events is stored exactly once.
 *
 * The store is the only mailbox: the runner's replica stores its batches and result wherever the run's
 * engine is; that engine learns of the change from this replica or a fleet message (the fleet's sweep,
 * RUNYARD_REPLICA_SWEEP_MS, covers lost ones), then reads the row and the run's new events.
 */
export class JobQueue {
  private readonly store: Pick<Store, "jobs" | "events" | "outages">;
  private readonly links: RunnerLinks;
  private readonly logger: Logger;
  private readonly waiters = new Map<string, Waiter>();
  /** Per waited job: the chain its row changes are read on, one at a time. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly pins = new HostPins();
  private readonly startOrder: JobStartOrder;
  /** The queue as lease keeping sees it (job-leases.ts). */
  private readonly leases: LeaseHolder;
  private readonly leaseChecks: LeaseChecks;
  /** Canceled jobs' deadlines for their runner's report; cleared on stop, when the store goes. */
  private readonly cancelDeadlines = new Set<NodeJS.Timeout>();
  /** Refused jobs' back-off ends, offered again (job-refusals.ts). */
  private readonly backoffs: BackoffOffers;

  constructor(private readonly options: JobQueueOptions) {
    this.store = options.store;
    this.links = options.links;
    this.logger = options.logger;
    this.startOrder = new JobStartOrder(options.store, options.logger);
    this.leases = {
      store: options.store,
      links: options.links,
      logger: options.logger,
      leaseMs: options.leaseMs,
      accept: (jobId, runnerId) => this.accept(jobId, runnerId),
      lost: (record, why, lossOptions) => this.lost(record, why, lossOptions),
      replicaId: options.replicaId,
      madeHere: (jobId) => {
        const made = this.waiters.get(jobId);
        return made?.madeHere ? made.job : undefined;
      },
    };
    this.leaseChecks = new LeaseChecks(this.leases);
    this.backoffs = new BackoffOffers(options.store, () => this.links.dispatch());
  }

  /** The lease runners get, and renew by heartbeats. */
  get leaseMs(): number {
    return this.options.leaseMs;
  }

  /**
   * Runs one job on a matching runner; resolves with its result, a lost or canceled one too. Aborting
   * `signal` cancels it; `started` is called when a runner takes it up, after the run's `run.started`.
   */
  runJob(
    job: Job,
    run: { runId: string; sink: RunSink; tenantId: string | null },
    placement: HostPlacement,
    signal: AbortSignal,
    started?: () => void,
  ): Promise<JobResult> {
    // A failed sink's engine is being replaced (RunService.engineLost): its job would take the waiter
    // of the engine that carries the run on.
    if (run.sink.lost) return halted;
    return new Promise<JobResult>((resolve, reject) => {
      // A cancel needs the stored row, so one that comes meanwhile waits for it; a signal aborted before
      // (canceled while readying the job) fires no event, so it is read then too.
      let stored = false;
      const onAbort = (): void => {
        if (stored) void this.cancel(job.job_id);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.enqueue(job, run, placement, { resolve, started }).then(() => {
        stored = true;
        if (signal.aborted) void this.cancel(job.job_id);
      }, reject);
    });
  }

  private async enqueue(
    job: Job,
    { runId, sink, tenantId }: { runId: string; sink: RunSink; tenantId: string | null },
    placement: HostPlacement,
    { resolve, started }: Pick<Waiter, "resolve" | "started">,
  ): Promise<void> {
    const id = job.job_id;
    const waiter: Waiter = { job, sink, resolve, started, accepted: false, enqueued: false, madeHere: false };
    this.waiters.set(id, waiter);
    const pinned = this.pins.runnerFor(runId, placement.host);
    const labels = [...placement.requirements.labels, ...(pinned ? [`runner:${pinned}`] : [])];
    // Queued in one statement; read only when this id was stored before (a restart, an adoption).
    const created = await this.store.jobs
      .create({
        id,
        run_id: runId,
        type: job.kind,
        requirements: { ...placement.requirements, labels, tenant_id: tenantId },
        payload: job.payload,
      })
      .catch((error: unknown) => {
        if (error instanceof RunyardError && error.code === "CONFLICT") return undefined;
        throw error;
      });
    if (created) waiter.madeHere = true;
    else {
      const existing = await this.store.jobs.get(id);
      if (existing?.status === "done" || existing?.status === "lost") {
        // Taken up before this engine waited (parked, its replica died): the run's and step's starts first.
        if (existing.runner_id && (existing.status === "done" || lossOf(existing).taken_up))
          this.applyAccepted(existing, existing.runner_id);
        // Its runner is gone, as `readRow` has it: the host's next job may go to any runner.
        if (existing.status === "lost") this.pins.unpin(runId, jobHost(job));
        this.waiters.delete(id);
        await sink.catchUp();
        resolve(resultOf(job, existing));
        return;
      }
      // A runner may have taken it up and finished before this engine waited: the row says so.
      void this.inOrder(id, () => this.readRow(id));
    }
    waiter.enqueued = true;
    this.links.dispatch();
  }

  /** Restores the pins of a run from its stored jobs (server restart, adoption). */
  async restorePins(runId: string): Promise<void> {
    for (const job of await this.store.jobs.list({ runId })) {
      if (job.runner_id && job.status !== "lost") this.pins.pin(job, job.runner_id);
    }
  }

  forgetRun(runId: string): void {
    this.pins.forgetRun(runId);
  }

  /**
   * A heartbeat renews the leases of the jobs this runner's socket holds, only those: a job another
   * replica handed it over a socket that no longer reaches it must not be kept alive.
   */
  async renew(runnerId: string, jobIds: readonly string[]): Promise<void> {
    await this.store.jobs.renewLeases(runnerId, this.leaseMs, jobIds);
  }

  /** The runner took up the job; its engine (here, or told by the fleet) pins its host and starts its run. */
  async accept(jobId: string, runnerId: string): Promise<void> {
    const record = await this.store.jobs.accept(jobId, runnerId);
    if (!record) return;
    this.changed(record);
  }

  /**
   * A runner's first report stands for its accept, and the engine waiting for the job is here: the
   * engine learns it at once (the run's and step's starts are emitted, stored before the batch),
   * and the batch's own statement moves the row to running (`advanceJobBatch`), so the accept costs
   * no write of its own. False where the row must be moved first: the engine is elsewhere (it learns
   * from the row), or the row is being read or has changed (lost, canceled), then `accept` does.
   */
  acceptedByBatch(jobId: string, runnerId: string): boolean {
    const waiter = this.waiters.get(jobId);
    if (!waiter || waiter.accepted || this.chains.has(jobId)) return false;
    waiter.accepted = true;
    this.pins.pinJob(waiter.sink.runId, waiter.job, runnerId);
    this.options.onAccepted?.(waiter.sink.runId, runnerId);
    waiter.started?.();
    return true;
  }

  /**
   * A batch of events from the runner, stored into the run's events wherever its engine is; resolves once
   * stored (then the runner is acked). "unknown": the job has ended or does not exist. "held": the engine
   * elsewhere has not stored the job's start yet (`JobStartOrder`); the runner sends it and all after again.
   */
  async events(
    jobId: string,
    batch: number,
    events: EventInput[],
    runnerId: string,
  ): Promise<"stored" | "duplicate" | "unknown" | "held"> {
    const waiter = this.waiters.get(jobId);
    // Waited here: the store takes the batch only while leased to this runner; read the row on refusal.
    const record = waiter ? undefined : await this.store.jobs.get(jobId);
    if (record) {
      if (record.runner_id !== runnerId) return "unknown";
      if (record.status !== "assigned" && record.status !== "running") return "unknown";
      if (batch <= record.last_event_seq) return "duplicate";
    }
    const job = waiter ? waiter.job : record && readJob(record);
    const runId = waiter ? waiter.sink.runId : record?.run_id;
    if (!job || !runId) return "unknown";
    const allowed = events.filter((event) => jobMaySend(job, event));
    if (allowed.length < events.length) {
      this.logger.warn(
        { jobId, refused: events.length - allowed.length },
        "left out events a job of this kind may not report",
      );
    }
    const ts = new Date().toISOString();
    const stamped = allowed.map((event) => stamp(event, ts));
    const jobRef = { id: jobId, seq: batch, runnerId };
    // All the engine emitted before now (run.started, step.started) is stored before the batch:
    // in the same transaction when its write has not begun (a first report: one write, not two).
    if (waiter) {
      // Accepted through another replica, this one may not have read the row yet.
      await this.inOrder(jobId, () => (waiter.accepted ? undefined : this.readRow(jobId)));
      const joined = await waiter.sink.storeWithBatch(stamped, jobRef);
      if (joined?.duplicate) return this.refusedBatch(jobId, batch, runnerId);
      if (joined) {
        await waiter.sink.storedHere(joined.events);
        return "stored";
      }
      await waiter.sink.stored();
    } else if (record && !(await this.startOrder.stored(record, job))) {
      return "held";
    }
    const stored = await this.store.events.appendForRun(runId, stamped, { job: jobRef });
    if (stored.duplicate) return record ? "duplicate" : this.refusedBatch(jobId, batch, runnerId);
    if (stored.events.length > 0) this.options.bus.publish(stored.events, stored.json);
    // The engine's record of the run follows its events (elsewhere, on the fleet's `events`).
    if (waiter) await waiter.sink.storedHere(stored.events);
    return "stored";
  }

  /** Why the store refused a batch it was handed without a read: stored before, or not this runner's job. */
  private async refusedBatch(
    jobId: string,
    batch: number,
    runnerId: string,
  ): Promise<"duplicate" | "unknown"> {
    const record = await this.store.jobs.get(jobId);
    if (!record || record.runner_id !== runnerId) return "unknown";
    if (record.status !== "assigned" && record.status !== "running") return "unknown";
    return batch <= record.last_event_seq ? "duplicate" : "unknown";
  }

  /** Whether the job's result, reported by this runner, is stored already (it sends it again). */
  async doneBy(jobId: string, runnerId: string): Promise<boolean> {
    const job = await this.store.jobs.get(jobId);
    return job?.status === "done" && job.runner_id === runnerId;
  }

  /**
   * The runner's result, stored on the job row once every batch it counts is ("missing-events" until
   * then); its engine reads it there. A result sent again is "done" too.
   */
  async finished(
    jobId: string,
    batches: number,
    reported: JobResult,
    runnerId: string,
  ): Promise<"done" | "missing-events" | "unknown"> {
    const waiter = this.waiters.get(jobId);
    if (waiter) {
      // Waited here: the statement checks the lease and the batches itself; the row is read only on refusal.
      const result = reported.kind !== waiter.job.kind ? wrongKind(waiter.job, reported) : reported;
      await waiter.sink.drain();
      const done = await this.store.jobs.complete(jobId, runnerId, result, batches);
      if (done) {
        this.startOrder.forget(jobId);
        this.changed(done);
        return "done";
      }
    }
    const record = await this.store.jobs.get(jobId);
    if (!record || record.runner_id !== runnerId) return "unknown";
    if (record.status === "done") return "done";
    if (record.status !== "assigned" && record.status !== "running") return "unknown";
    if (record.last_event_seq < batches) return "missing-events";
    const job = readJob(record);
    const result = job && reported.kind !== job.kind ? wrongKind(job, reported) : reported;
    await this.waiters.get(jobId)?.sink.drain();
    // Lost or canceled meanwhile: that outcome stands, and the engine has it already.
    const done = await this.store.jobs.complete(jobId, runnerId, result);
    this.startOrder.forget(jobId);
    if (!done) return "unknown";
    this.changed(done);
    return "done";
  }

  /**
   * A runner cannot run the job it was given: it is offered again after a back-off (1 s, 2 s, ...), and
   * fails JOB_REFUSED, naming every refusal, at the `maxJobRefusals`-th. A job it had accepted is lost.
   * Returns when to offer it again, "failed", or "unknown" when the runner no longer held it.
   */
  async refused(
    jobId: string,
    runnerId: string,
    reason: string,
  ): Promise<{ retryInMs: number } | "failed" | "unknown"> {
    const record = await this.store.jobs.get(jobId);
    if (!record || record.runner_id !== runnerId) return "unknown";
    if (record.status === "running") {
      await this.lost(record, `runner ${runnerId} gave the job up after accepting it: ${reason}`);
      return "failed";
    }
    if (record.status !== "assigned") return "unknown";
    const refusals = [...record.refusals, { runner_id: runnerId, reason }];
    this.logger.warn({ jobId, runnerId, refusals: refusals.length, reason }, "runner refused a job");
    const job = readJob(record);
    if (refusals.length < maxJobRefusals && job) {
      const retryInMs = refusalBackoff(refusals.length);
      const notBefore = Date.now() + retryInMs;
      const requeued = await this.store.jobs.refuse(jobId, runnerId, refusals, new Date(notBefore));
      if (!requeued) return "unknown";
      this.backoffs.at(notBefore);
      return { retryInMs };
    }
    const error = job
      ? refusedError(record, refusals)
      : errorInfo("RUNNER_LOST", "its stored payload no longer matches its kind");
    const result = job ? jobEndedEarly(job, "failed", error) : null;
    const given = await this.store.jobs.giveUp(jobId, runnerId, result);
    if (!given) return "unknown";
    this.changed(given);
    return "failed";
  }

  /** The runner gave the job up (draining, stopping): back to the queue if never started, else lost. */
  async returned(jobId: string, runnerId: string, reason: string): Promise<void> {
    if (await this.store.jobs.giveBack(jobId, runnerId)) return;
    const job = await this.store.jobs.get(jobId);
    if (job) await this.lost(job, `runner ${runnerId} gave the job up: ${reason}`);
  }

  /**
   * Its runner is gone or no longer holds it (lease expired, restarted without it, shutdown grace passed):
   * the attempt ends RUNNER_LOST, and the engine retries or interrupts.
   */
  async lost(record: JobRecord, why: string, { journaled = false } = {}): Promise<void> {
    if (!record.runner_id) return;
    // Taken up: accepted, or journaled by a runner whose accept died with it. Otherwise nobody
    // knows whether its runner began it, and the run does not say it did.
    const loss: JobLoss = { message: why, taken_up: journaled || record.status === "running" };
    const lost = await this.store.jobs.lose(record.id, record.runner_id, loss);
    if (!lost) return;
    this.logger.warn({ jobId: record.id, runnerId: record.runner_id }, `job lost: ${why}`);
    if (!this.waiters.has(record.id)) return this.links.jobChanged(record.run_id, record.id);
    await this.inOrder(record.id, () => this.readRow(record.id, lost));
  }

  /**
   * Taken up before lost, unheard by its engine (accepted on another replica, or the accept died with a
   * runner that journaled the job): its step's start is stored before the loss.
   */
  private startedBeforeLost(record: JobRecord): void {
    const waiter = this.waiters.get(record.id);
    if (!waiter || waiter.accepted || !record.runner_id || !lossOf(record).taken_up) return;
    waiter.accepted = true;
    this.applyAccepted(record, record.runner_id);
  }

  /** Every job leased to the runner is lost (its token was revoked: it can never come back with them). */
  async loseRunnerJobs(runnerId: string, why: string): Promise<void> {
    for (const job of await this.store.jobs.list({ runnerId, statuses: ["assigned", "running"] }))
      await this.lost(job, why);
  }

  /** After a server restart: the leased jobs of `runIds` wait `graceMs` for their runners to come back. */
  async holdLeases(runIds: readonly string[], graceMs: number): Promise<void> {
    await this.store.jobs.holdLeases(runIds, new Date(Date.now() + graceMs));
  }

  /** The next job for a runner that holds jobs of kinds `held` (`claimJob`). */
  claimFor(
    runner: RunnerInfo,
    held: readonly string[],
  ): Promise<Claimed | "nothing queued" | "no room" | undefined> {
    return claimJob(this.leases, runner, held);
  }

  /** Checks leases while `isLeader` says so (LeaseChecks). */
  startLeaseChecks(isLeader: () => boolean): void {
    this.leaseChecks.start(isLeader);
  }

  /** A runner says hello listing the jobs it holds; its list is the truth (`takeInventory`). */
  inventory(runnerId: string, held: readonly HeldJob[], reaped: readonly string[]): Promise<Inventory> {
    return takeInventory(this.leases, runnerId, held, reaped);
  }

  /** The back-offs a stopped server's timers would have ended, offered at their ends (`BackoffOffers`). */
  offerAfterBackoffs(): Promise<void> {
    return this.backoffs.afterRestart();
  }

  stop(): void {
    this.leaseChecks.stop();
    this.backoffs.stop();
    for (const deadline of this.cancelDeadlines) clearTimeout(deadline);
    this.cancelDeadlines.clear();
  }

  /** The changed row, as its statement returned it: an engine here acts on it unread, else its replica is told. */
  private changed(record: JobRecord): void {
    if (this.waiters.has(record.id)) void this.inOrder(record.id, () => this.readRow(record.id, record));
    else this.links.jobChanged(record.run_id, record.id);
  }

  /** The rows of `jobIds` may have changed (a fleet message, the sweep): engines here read them. */
  jobsChanged(jobIds: readonly string[]): void {
    for (const jobId of jobIds) {
      if (this.waiters.has(jobId)) void this.inOrder(jobId, () => this.readRow(jobId));
    }
  }

  /** In case a fleet message was lost: rereads every waited job's row, one statement per `sweepChunk`. */
  async recheckWaited(): Promise<void> {
    const ids = this.waitedJobs();
    for (let start = 0; start < ids.length; start += sweepChunk) {
      for (const record of await this.store.jobs.list({ ids: ids.slice(start, start + sweepChunk) }))
        void this.inOrder(record.id, () => this.readRow(record.id, record));
    }
  }

  /**
   * Parks the runs of `runIds` whose engines wait only on queued jobs (not heard taken up, no row read
   * under way), dropping their waits; returns each with its jobs. It goes on from the store when one of
   * them changes (`RunService.jobChanged`).
   */
  park(runIds: ReadonlySet<string>): Map<string, string[]> {
    const waited = new Map<string, string[]>();
    const busy = new Set<string>();
    for (const [id, waiter] of this.waiters) {
      const runId = waiter.sink.runId;
      if (!runIds.has(runId)) continue;
      if (waiter.accepted || !waiter.enqueued || this.chains.has(id)) busy.add(runId);
      else waited.set(runId, [...(waited.get(runId) ?? []), id]);
    }
    for (const runId of busy) waited.delete(runId);
    for (const ids of waited.values()) for (const id of ids) this.waiters.delete(id);
    return waited;
  }

  /** The jobs this replica's engines wait for. */
  waitedJobs(): string[] {
    return [...this.waiters.keys()];
  }

  private inOrder<T>(jobId: string, fn: () => Promise<T> | T): Promise<T> {
    const next = (this.chains.get(jobId) ?? Promise.resolve()).then(fn);
    const settled = next.catch((error: unknown) => {
      this.logger.warn({ err: error, jobId }, "cannot read a job's row");
    });
    this.chains.set(jobId, settled);
    void settled.then(() => {
      if (this.chains.get(jobId) === settled) this.chains.delete(jobId);
    });
    return next;
  }

  /**
   * Acts on a waited job's row (read now, or as a statement here returned it): taken up (the run starts,
   * its host is pinned), or ended (its reported events are projected, then the engine goes on).
   */
  private async readRow(jobId: string, known?: JobRecord): Promise<void> {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return;
    const record = known ?? (await this.store.jobs.get(jobId));
    if (!record) return;
    if (record.runner_id && (record.status === "running" || record.status === "done") && !waiter.accepted) {
      waiter.accepted = true;
      this.applyAccepted(record, record.runner_id);
    }
    if (record.status === "lost") this.startedBeforeLost(record);
    if (record.status !== "done" && record.status !== "lost") return;
    await waiter.sink.catchUp();
    if (record.status === "lost") this.pins.unpin(record.run_id, jobHost(waiter.job));
    this.settle(jobId, resultOf(waiter.job, record));
  }

  private applyAccepted(record: JobRecord, runnerId: string): void {
    this.pins.pin(record, runnerId);
    this.options.onAccepted?.(record.run_id, runnerId);
    this.waiters.get(record.id)?.started?.();
  }

  /**
   * Ends every open job of the run that no engine here waits for: a run restarted from the store may end
   * without waiting for a job its earlier engine queued, and no runner may take that up after the run's
   * end. A held one ends at once too (its runner is told to stop): its late output must not follow the end.
   */
  async endJobs(runId: string): Promise<void> {
    const open = await this.store.jobs.list({ runId, statuses: ["queued", "assigned", "running"] });
    for (const job of open) if (!this.waiters.has(job.id)) await this.cancel(job.id, { unwaited: true });
  }

  /**
   * The run was canceled: a queued job ends here; a held one is stopped on its runner and ends when it
   * reports (at once when `unwaited`: no engine waits for its report).
   */
  private async cancel(jobId: string, { unwaited = false } = {}): Promise<void> {
    const record = await this.store.jobs.get(jobId);
    if (!record || record.status === "done" || record.status === "lost") return;
    const job = readJob(record);
    if (!job) return;
    const result = endedEarly(job, "CANCELED", "the run was canceled");
    // Only if no runner claimed it meanwhile; otherwise it is stopped on its runner below.
    if (record.status === "queued" && (await this.store.jobs.cancelQueued(jobId, result)))
      return this.settle(jobId, result);
    const current = await this.store.jobs.get(jobId);
    if (current?.runner_id && (await this.links.cancel(jobId, current.runner_id)) && !unwaited) {
      // The runner stops the process group (SIGTERM, then SIGKILL after its grace) and reports; if it
      // never does, the attempt ends here anyway.
      const deadline = setTimeout(() => {
        this.cancelDeadlines.delete(deadline);
        void this.endCanceled(jobId, result);
      }, this.options.cancelDeadlineMs ?? 15_000).unref();
      this.cancelDeadlines.add(deadline);
      return;
    }
    // No live runner holds it, or nothing waits for its report: it ends here; a late report is refused.
    await this.endCanceled(jobId, result);
  }

  private async endCanceled(jobId: string, result: JobResult): Promise<void> {
    if (await this.store.jobs.cancel(jobId, result)) this.settle(jobId, result);
  }

  private settle(jobId: string, result: JobResult | undefined): void {
    const waiter = this.waiters.get(jobId);
    this.waiters.delete(jobId);
    if (!waiter) return;
    waiter.resolve(result ?? endedEarly(waiter.job, "RUNNER_LOST", "the job's stored record is unreadable"));
  }
}
