import { errorInfo } from "../core/errors.js";
import type { EventInput } from "../core/events.js";
import { assertExhaustive } from "../core/exhaustive.js";
import { type Job, JobResult, jobEndedEarly, jobHost, jobMaySend } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import type { HeldJob, RunnerInfo } from "../core/protocol.js";
import type { StepRunner } from "../core/step-attempt.js";
import type { JobRecord, JobReport, JobReportKind, JobRequirements, Store } from "../store/index.js";
import { HostPins } from "./host-pins.js";
import { endedEarly, jobIdFor, readJob, stepResult } from "./job-records.js";
import { maxJobRefusals, refusalBackoff, refusedError } from "./job-refusals.js";
import type { RunSink } from "./run-sink.js";

/** How the queue reaches runners: the sockets of this replica, and through them the fleet's. */
export interface RunnerLinks {
  /** Offer queued jobs to idle runners now, on every replica. */
  dispatch(): void;
  /** Ask the runner holding the job to stop it; false when that runner is connected nowhere. */
  cancel(jobId: string, runnerId: string): boolean | Promise<boolean>;
  /** The runner no longer holds the job (it was lost): its socket here, if any, is told to drop it. */
  drop(jobId: string, runnerId: string): void;
  /** Tell the replica carrying `runId` that reports on `jobId` wait in the store. */
  reported(runId: string, jobId: string): void;
}

export interface JobQueueOptions {
  store: Store;
  links: RunnerLinks;
  logger: Logger;
  /** This server among the replicas: it claims only for runners connected to it. */
  replicaId: string;
  /** A job's lease; heartbeats renew it. A runner silent this long loses its jobs. */
  leaseMs: number;
  /** A runner took up a job of a run this replica carries: the run has started. */
  onAccepted?: (runId: string, runnerId: string) => void;
  /** How long a runner gets to report a canceled job before the server ends it itself. */
  cancelDeadlineMs?: number;
}

/** An engine waiting for one job's result. */
interface Waiter {
  job: Job;
  sink: RunSink;
  resolve: (result: JobResult) => void;
  /** Called when a runner takes the job up (after the run's `run.started`). */
  started: (() => void) | undefined;
}

/** Where a run's host runs: its requirements, and its name (hosts stick to their first runner). */
export interface HostPlacement {
  requirements: JobRequirements;
  host: string;
}

/** A job handed to a runner, with the deadline of its lease. */
export interface Assignment {
  job: Job;
  lease_expires_at: string;
}

/** What a runner saying hello holds, as the queue sees it. */
export interface Inventory {
  /** Jobs leased to it that it still holds (id -> kind): it goes on with them. */
  resumed: Map<string, string>;
  /** Jobs it lists that are not its to hold: it drops them. */
  drop: string[];
  /** Jobs it lists that ended while it was away: it stops them. */
  cancel: string[];
}

/** Bots one runner runs at once, besides its capacity of other work. */
const maxBotsPerRunner = 50;

/** Stored reports read at once when applying them (each holds up to a whole batch of events). */
const storedReportsPage = 100;

/**
 * The one owner of the job lifecycle (DESIGN.md section 6): queued -> assigned -> running ->
 * done | lost, and assigned -> queued when a runner gives a job back. It alone calls the store's
 * job verbs; the runner sockets feed it, the engines wait on it. Batches of events are stored
 * exactly once.
 *
 * A report on a job this replica's engine waits for is applied at once. Any other report (the
 * run's engine lives on another replica, or has not asked for the job again after a restart or
 * an adoption) is stored as a job report and applied, in arrival order, by the engine that waits
 * for the job. Each job's reports are applied one at a time, stored ones first.
 */
export class JobQueue {
  private readonly store: Store;
  private readonly links: RunnerLinks;
  private readonly logger: Logger;
  private readonly waiters = new Map<string, Waiter>();
  /** Per job: the chain its reports are applied on, one at a time. */
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Waited jobs that may have stored reports to apply before anything else. */
  private readonly unread = new Set<string>();
  /** Highest output batch seen per job; checked before an event seq is spent. */
  private readonly lastBatch = new Map<string, number>();
  private readonly pins = new HostPins();
  private leaseTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: JobQueueOptions) {
    this.store = options.store;
    this.links = options.links;
    this.logger = options.logger;
  }

  /** The lease runners get, and renew by heartbeats. */
  get leaseMs(): number {
    return this.options.leaseMs;
  }

  /**
   * A StepRunner whose attempts become `step` jobs for matching runners. Their output never
   * passes `io.onOutput`: the runner masks it and reports it as `step.output` events, which
   * `events` stores as they are.
   */
  stepRunner(runId: string, sink: RunSink, placement: HostPlacement, tenantId: string | null): StepRunner {
    return {
      // The attempt starts when a runner accepts its job (`accept`), not when it is queued.
      startsLater: true,
      runAttempt: async (request, io) => {
        const job: Job = { job_id: jobIdFor(request), kind: "step", payload: request };
        return stepResult(
          await this.runJob(job, { runId, sink, tenantId }, placement, io.signal, io.started),
        );
      },
    };
  }

  /**
   * Runs one job of any kind on a matching runner; resolves with its result (a lost or canceled
   * job resolves too, with its error). Aborting `signal` cancels it. `started` is called when a
   * runner takes it up, after the run's `run.started`.
   */
  runJob(
    job: Job,
    run: { runId: string; sink: RunSink; tenantId: string | null },
    placement: HostPlacement,
    signal: AbortSignal,
    started?: () => void,
  ): Promise<JobResult> {
    return new Promise<JobResult>((resolve, reject) => {
      this.enqueue(job, run, placement, { resolve, started }).catch(reject);
      signal.addEventListener("abort", () => void this.cancel(job.job_id), { once: true });
    });
  }

  private async enqueue(
    job: Job,
    { runId, sink, tenantId }: { runId: string; sink: RunSink; tenantId: string | null },
    placement: HostPlacement,
    { resolve, started }: Pick<Waiter, "resolve" | "started">,
  ): Promise<void> {
    const id = job.job_id;
    const existing = await this.store.jobs.get(id);
    if (existing?.status === "done") {
      const stored = JobResult.safeParse(existing.result);
      resolve(
        stored.success
          ? stored.data
          : endedEarly(job, "RUNNER_LOST", "the stored result of this job is unreadable"),
      );
      return;
    }
    if (existing?.status === "lost") {
      resolve(endedEarly(job, "RUNNER_LOST", `runner ${existing.runner_id} stopped heartbeating`));
      return;
    }
    this.waiters.set(id, { job, sink, resolve, started });
    if (existing) {
      this.lastBatch.set(id, existing.last_event_seq);
      // A runner took it up before this engine waited (a restart, an adoption): it has started.
      if (existing.status === "running" && existing.runner_id)
        this.applyAccepted(existing, existing.runner_id);
      // Its runner may have reported while no engine here waited for it.
      this.unread.add(id);
      void this.inOrder(id, async () => undefined);
    } else {
      const pinned = this.pins.runnerFor(runId, placement.host);
      const labels = [...placement.requirements.labels, ...(pinned ? [`runner:${pinned}`] : [])];
      await this.store.jobs.create({
        id,
        run_id: runId,
        type: job.kind,
        requirements: { ...placement.requirements, labels, tenant_id: tenantId },
        payload: job.payload,
      });
      this.lastBatch.set(id, 0);
    }
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
   * The next job for a runner that holds jobs of kinds `held`, or undefined when it has no room
   * or nothing waits for it. `capacity` counts its work (steps, agent turns); bots, mostly idle
   * containers that live for hours, have slots of their own (maxBotsPerRunner).
   */
  async claimFor(runner: RunnerInfo, held: readonly string[]): Promise<Assignment | undefined> {
    const bots = held.filter((kind) => kind === "bot").length;
    const workRoom = held.length - bots < runner.capacity;
    const botRoom = bots < maxBotsPerRunner;
    // Only the kinds it has a handler for: a runner offered a job it cannot run would refuse it.
    const kinds = runner.kinds.filter((kind) => (kind === "bot" ? botRoom : workRoom));
    if (kinds.length === 0) return undefined;
    for (;;) {
      const record = await this.store.jobs.claim(
        {
          id: runner.id,
          group: runner.group,
          labels: [...runner.labels, `runner:${runner.id}`],
          tenant_id: runner.tenant_id,
          shared: runner.shared,
          isolation: runner.isolation,
          replica_id: this.options.replicaId,
          onlyTypes: kinds,
        },
        this.leaseMs,
      );
      if (!record) return undefined;
      const job = readJob(record);
      if (!job) {
        await this.lost(record, "its stored payload no longer matches its kind");
        continue;
      }
      return {
        job,
        lease_expires_at: record.lease_expires_at ?? new Date(Date.now() + this.leaseMs).toISOString(),
      };
    }
  }

  /**
   * A runner says hello listing the jobs it holds. Its list is the truth: a job it accepted but
   * does not list died with an earlier life of the runner, and is lost now rather than when its
   * lease lapses; one it never accepted (its assign never arrived) goes back to the queue. The
   * jobs it goes on with get a fresh lease.
   */
  async inventory(runnerId: string, held: readonly HeldJob[], reaped: readonly string[]): Promise<Inventory> {
    const listed = new Set(held.map((job) => job.id));
    const inventory: Inventory = { resumed: new Map(), drop: [], cancel: [] };
    let requeued = false;
    for (const job of await this.store.jobs.list({ runnerId, statuses: ["assigned", "running"] })) {
      if (listed.has(job.id)) {
        inventory.resumed.set(job.id, job.type);
        continue;
      }
      if (reaped.includes(job.id)) {
        await this.lost(
          job,
          `runner ${runnerId} restarted and killed what was left of this step from its previous life`,
        );
        continue;
      }
      // Never accepted and not held: its assign never reached the runner (the link dropped, or
      // the replica that claimed it died), so nothing of it ran. It goes back to the queue.
      if (job.status === "assigned" && (await this.store.jobs.giveBack(job.id, runnerId))) {
        requeued = true;
        continue;
      }
      await this.lost(job, `runner ${runnerId} came back without this job (it restarted or gave the job up)`);
    }
    if (requeued) this.links.dispatch();
    for (const { id } of held) {
      if (inventory.resumed.has(id)) continue;
      const job = await this.store.jobs.get(id);
      // A finished job is told `done` when the runner sends its result again. One the server
      // ended while its runner was away (a bot stopped meanwhile) still runs there: canceled, so
      // it stops; a runner that has the result already ignores the cancel.
      if (job?.status === "done" && job.runner_id === runnerId) inventory.cancel.push(id);
      else inventory.drop.push(id);
    }
    await this.store.jobs.renewLeases(runnerId, this.leaseMs, [...inventory.resumed.keys()]);
    // What it reported through another replica before moving here is applied before what it says now.
    this.mayHaveReports([...inventory.resumed.keys()]);
    return inventory;
  }

  /**
   * A heartbeat: the leases of the jobs the runner's socket holds are renewed. Only those: a job
   * another replica handed to this runner over a socket that no longer reaches it must not be
   * kept alive by these heartbeats.
   */
  async renew(runnerId: string, jobIds: readonly string[]): Promise<void> {
    await this.store.jobs.renewLeases(runnerId, this.leaseMs, jobIds);
  }

  /** The runner took up the job: it runs, its host is pinned there, and its run has started. */
  async accept(jobId: string, runnerId: string): Promise<void> {
    const record = await this.store.jobs.accept(jobId, runnerId);
    if (!record) return;
    if (!this.waiters.has(jobId)) {
      await this.keepReport(jobId, runnerId, "accepted", 0, {});
      return;
    }
    await this.inOrder(jobId, async () => this.applyAccepted(record, runnerId));
  }

  private applyAccepted(record: JobRecord, runnerId: string): void {
    this.pins.pin(record, runnerId);
    this.options.onAccepted?.(record.run_id, runnerId);
    this.waiters.get(record.id)?.started?.();
  }

  /**
   * A batch of events from the runner; resolves once stored (then the runner is acked): as the
   * run's events when this replica's engine waits for the job, else as a job report for the
   * engine that will. "unknown": the job has ended or does not exist.
   */
  async events(
    jobId: string,
    batch: number,
    events: EventInput[],
    runnerId: string,
  ): Promise<"stored" | "duplicate" | "unknown"> {
    if (!this.waiters.has(jobId)) return this.keepReport(jobId, runnerId, "events", batch, events);
    return this.inOrder(jobId, () => this.applyEvents(jobId, batch, events));
  }

  private async applyEvents(
    jobId: string,
    batch: number,
    events: EventInput[],
  ): Promise<"stored" | "duplicate" | "unknown"> {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return "unknown";
    const last = this.lastBatch.get(jobId) ?? 0;
    if (batch <= last) return "duplicate";
    this.lastBatch.set(jobId, batch);
    const allowed = events.filter((event) => jobMaySend(waiter.job, event));
    if (allowed.length < events.length) {
      this.logger.warn(
        { jobId, refused: events.length - allowed.length },
        "left out events a job of this kind may not report",
      );
    }
    await waiter.sink.jobBatch(jobId, batch, allowed);
    return "stored";
  }

  /** Whether the job's result, reported by this runner, is stored already (it sends it again). */
  async doneBy(jobId: string, runnerId: string): Promise<boolean> {
    const job = await this.store.jobs.get(jobId);
    return job?.status === "done" && job.runner_id === runnerId;
  }

  /** The runner's result; stored before the engine goes on (or kept for the engine that will). */
  async finished(
    jobId: string,
    batches: number,
    reported: JobResult,
    runnerId: string,
  ): Promise<"done" | "missing-events" | "unknown"> {
    if (!this.waiters.has(jobId)) {
      const outcome = await this.keepReport(jobId, runnerId, "finished", batches, reported);
      return outcome === "unknown" ? "unknown" : "done";
    }
    return this.inOrder(jobId, () => this.applyFinished(jobId, batches, reported, runnerId));
  }

  private async applyFinished(
    jobId: string,
    batches: number,
    reported: JobResult,
    runnerId: string,
  ): Promise<"done" | "missing-events" | "unknown"> {
    const waiter = this.waiters.get(jobId);
    if (waiter && (this.lastBatch.get(jobId) ?? 0) < batches) return "missing-events";
    // A result of another kind than the job's cannot be read as the job's result.
    const result =
      waiter && reported.kind !== waiter.job.kind
        ? jobEndedEarly(waiter.job, "failed", {
            code: "INTERNAL",
            message: `the runner sent a ${reported.kind} result for a ${waiter.job.kind} job`,
          })
        : reported;
    await waiter?.sink.drain();
    // Lost or canceled meanwhile: that outcome stands, and the engine has it already.
    if (!(await this.store.jobs.complete(jobId, runnerId, result))) return "unknown";
    this.settle(jobId, result);
    return "done";
  }

  /**
   * A runner gave the job back unstarted because it cannot run it: it is offered again once its
   * back-off (1 s, 2 s, ...) has passed, and fails with JOB_REFUSED, every refusal named, at the
   * `maxJobRefusals`-th. A job the runner had accepted is not refused but lost. Returns when to
   * offer it again, "failed", or "unknown" when the runner no longer held it.
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
      const requeued = await this.store.jobs.refuse(
        jobId,
        runnerId,
        refusals,
        new Date(Date.now() + retryInMs),
      );
      return requeued ? { retryInMs } : "unknown";
    }
    const error = job
      ? refusedError(record, refusals)
      : errorInfo("RUNNER_LOST", "its stored payload no longer matches its kind");
    const result = job ? jobEndedEarly(job, "failed", error) : null;
    if (!(await this.store.jobs.giveUp(jobId, runnerId, result))) return "unknown";
    if (!this.waiters.has(jobId) && result) {
      // The engine waiting for it is on another replica (or not yet back): it learns from the report.
      await this.store.jobReports.add({
        job_id: jobId,
        run_id: record.run_id,
        kind: "finished",
        batch: 0,
        runner_id: runnerId,
        body: result,
      });
      this.links.reported(record.run_id, jobId);
    } else this.settle(jobId, result ?? undefined);
    return "failed";
  }

  /**
   * The runner gave the job up (it is draining or stopping). Never started: it goes back to the
   * queue for another runner. Started: it is lost.
   */
  async returned(jobId: string, runnerId: string, reason: string): Promise<void> {
    if (await this.store.jobs.giveBack(jobId, runnerId)) return;
    const job = await this.store.jobs.get(jobId);
    if (job) await this.lost(job, `runner ${runnerId} gave the job up: ${reason}`);
  }

  /**
   * A job whose runner is gone or no longer holds it (lease expired, runner restarted without it,
   * shutdown grace passed): the attempt ends RUNNER_LOST, and the engine retries or interrupts.
   */
  async lost(record: JobRecord, why: string): Promise<void> {
    // A result it reported through a replica is waiting to be applied: it finished, it is not lost.
    if ((await this.store.jobReports.jobsWithReports([record.id], "finished")).length > 0) return;
    if (!(await this.store.jobs.lose(record.id))) return;
    this.logger.warn({ jobId: record.id, runnerId: record.runner_id }, `job lost: ${why}`);
    if (!this.waiters.has(record.id)) {
      // The engine waiting for it is elsewhere (or not yet back): it learns from the report.
      await this.store.jobReports.add({
        job_id: record.id,
        run_id: record.run_id,
        kind: "lost",
        batch: 0,
        runner_id: record.runner_id,
        body: why,
      });
      this.links.reported(record.run_id, record.id);
      return;
    }
    const job = readJob(record);
    if (!job) return this.settle(record.id, undefined);
    this.pins.unpin(record.run_id, jobHost(job));
    this.settle(record.id, endedEarly(job, "RUNNER_LOST", why));
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

  /** Checks leases every quarter lease (at most every 500 ms) while `isLeader` says so. */
  startLeaseChecks(isLeader: () => boolean): void {
    this.leaseTimer = setInterval(
      () => {
        if (isLeader()) void this.expireLeases();
      },
      Math.min(500, this.leaseMs / 4),
    );
  }

  /** Jobs whose runner stopped heartbeating past the lease are lost, and their sockets told. */
  private async expireLeases(): Promise<void> {
    try {
      for (const job of await this.store.jobs.expired(new Date().toISOString())) {
        await this.lost(job, `runner ${job.runner_id} stopped heartbeating; its lease expired`);
        if (job.runner_id) this.links.drop(job.id, job.runner_id);
      }
    } catch (error) {
      this.logger.error({ err: error }, "lease check failed");
    }
  }

  stop(): void {
    clearInterval(this.leaseTimer);
  }

  /** Keeps a report for the engine of the job's run; "unknown" when the job has ended. */
  private async keepReport(
    jobId: string,
    runnerId: string,
    kind: JobReportKind,
    batch: number,
    body: unknown,
  ): Promise<"stored" | "unknown"> {
    const job = await this.store.jobs.get(jobId);
    if (!job || job.status === "done" || job.status === "lost") return "unknown";
    await this.store.jobReports.add({
      job_id: jobId,
      run_id: job.run_id,
      kind,
      batch,
      runner_id: runnerId,
      body,
    });
    // An engine here may have begun to wait meanwhile; else tell the replica carrying the run
    // (an engine that begins to wait here later reads the stored reports itself, in enqueue).
    if (this.waiters.has(jobId)) {
      this.unread.add(jobId);
      void this.inOrder(jobId, async () => undefined);
    } else this.links.reported(job.run_id, jobId);
    return "stored";
  }

  /** Stored reports on `jobIds` may wait: apply them before the next report on each. */
  mayHaveReports(jobIds: readonly string[]): void {
    for (const jobId of jobIds) {
      if (!this.waiters.has(jobId)) continue;
      this.unread.add(jobId);
      void this.inOrder(jobId, async () => undefined);
    }
  }

  /** The jobs this replica's engines wait for. */
  waitedJobs(): string[] {
    return [...this.waiters.keys()];
  }

  /** Runs `fn` on the job's chain, after the stored reports it may have. */
  private inOrder<T>(jobId: string, fn: () => Promise<T> | T): Promise<T> {
    const next = (this.chains.get(jobId) ?? Promise.resolve()).then(async () => {
      if (this.unread.has(jobId)) await this.applyStored(jobId);
      return fn();
    });
    const settled = next.catch(() => undefined);
    this.chains.set(jobId, settled);
    void settled.then(() => {
      if (this.chains.get(jobId) === settled) this.chains.delete(jobId);
    });
    return next;
  }

  /**
   * Applies the job's stored reports in arrival order and deletes them, a page at a time: a
   * runner on another replica is acked as soon as its batch is stored, so a backlog can be long.
   */
  private async applyStored(jobId: string): Promise<void> {
    this.unread.delete(jobId);
    for (;;) {
      const reports = await this.store.jobReports.list({ jobIds: [jobId], limit: storedReportsPage });
      const applied: number[] = [];
      for (const report of reports) {
        if (!this.waiters.has(jobId)) break;
        if (!(await this.applyReport(jobId, report))) break;
        applied.push(report.id);
      }
      await this.store.jobReports.delete(applied);
      if (reports.length < storedReportsPage || applied.length < reports.length) return;
    }
  }

  /** One stored report; false when it cannot be applied yet (its events have not all come). */
  private async applyReport(jobId: string, report: JobReport): Promise<boolean> {
    switch (report.kind) {
      case "events": {
        const events = Array.isArray(report.body) ? (report.body as EventInput[]) : [];
        await this.applyEvents(jobId, report.batch, events);
        return true;
      }
      case "finished": {
        const result = JobResult.safeParse(report.body);
        if (!result.success) {
          if (this.waiters.has(jobId)) this.settle(jobId, undefined);
          return true;
        }
        const outcome = await this.applyStoredResult(jobId, report, result.data);
        return outcome !== "missing-events";
      }
      case "accepted": {
        const record = await this.store.jobs.get(jobId);
        if (record && report.runner_id) this.applyAccepted(record, report.runner_id);
        return true;
      }
      case "lost": {
        const waiter = this.waiters.get(jobId);
        const why = typeof report.body === "string" ? report.body : "its runner was lost";
        if (waiter) {
          this.pins.unpin(report.run_id, jobHost(waiter.job));
          this.settle(jobId, endedEarly(waiter.job, "RUNNER_LOST", why));
        }
        return true;
      }
      default:
        return assertExhaustive(report.kind, "job report kind");
    }
  }

  /**
   * A stored result: a runner's (stored on its job here, as `finished` does), or the one the
   * queue gave a job it gave up on another replica, whose job is done already.
   */
  private async applyStoredResult(
    jobId: string,
    report: JobReport,
    result: JobResult,
  ): Promise<"done" | "missing-events" | "unknown"> {
    const record = await this.store.jobs.get(jobId);
    if (record?.status === "done") {
      this.settle(jobId, JobResult.safeParse(record.result).data ?? result);
      return "done";
    }
    return this.applyFinished(jobId, report.batch, result, report.runner_id ?? "");
  }

  /** The run was canceled: a queued job ends here; a held one is stopped on its runner. */
  private async cancel(jobId: string): Promise<void> {
    const record = await this.store.jobs.get(jobId);
    if (!record || record.status === "done" || record.status === "lost") return;
    const job = readJob(record);
    if (!job) return;
    const result = endedEarly(job, "CANCELED", "the run was canceled");
    // Only if no runner claimed it meanwhile; otherwise it is stopped on its runner below.
    if (record.status === "queued" && (await this.store.jobs.cancelQueued(jobId, result)))
      return this.settle(jobId, result);
    const current = await this.store.jobs.get(jobId);
    if (current?.runner_id && (await this.links.cancel(jobId, current.runner_id))) {
      // The runner stops the process group (SIGTERM, then SIGKILL after its grace) and reports;
      // should that report never come, the attempt ends here anyway.
      setTimeout(() => void this.endCanceled(jobId, result), this.options.cancelDeadlineMs ?? 15_000).unref();
      return;
    }
    // No live runner holds it: the attempt ends here; a late report from a runner is refused.
    await this.endCanceled(jobId, result);
  }

  private async endCanceled(jobId: string, result: JobResult): Promise<void> {
    if (await this.store.jobs.cancel(jobId, result)) this.settle(jobId, result);
  }

  private settle(jobId: string, result: JobResult | undefined): void {
    const waiter = this.waiters.get(jobId);
    this.waiters.delete(jobId);
    this.lastBatch.delete(jobId);
    this.unread.delete(jobId);
    if (!waiter) return;
    waiter.resolve(result ?? endedEarly(waiter.job, "RUNNER_LOST", "the job's stored record is unreadable"));
  }
}
