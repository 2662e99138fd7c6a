import { createHash } from "node:crypto";
import { errorInfo } from "../core/errors.js";
import type { ErrorInfo, EventInput } from "../core/events.js";
import { assertExhaustive } from "../core/exhaustive.js";
import { Job, JobResult, jobEndedEarly, jobHost, jobMaySend } from "../core/jobs/index.js";
import type { StepJobResult } from "../core/jobs/step.js";
import type { Logger } from "../core/logger.js";
import type { StepAttemptRequest, StepAttemptResult, StepRunner } from "../core/step-attempt.js";
import type {
  JobRecord,
  JobRefusal,
  JobReport,
  JobReportKind,
  JobRequirements,
  Store,
} from "../store/index.js";
import type { RunSink } from "./run-sink.js";

/** How the broker reaches runners: through the runner hub, and other replicas' hubs. */
export interface JobTransport {
  /** Offer queued jobs to idle runners now, on every replica. */
  dispatch(): void;
  /** Ask the runner holding the job to stop it; false when that runner is connected nowhere. */
  cancel(jobId: string, runnerId: string): boolean | Promise<boolean>;
  /** Tell the replica carrying `runId` that reports on `jobId` wait in the store. */
  reported(runId: string, jobId: string): void;
}

/** An engine waiting for one job's result. */
interface Waiter {
  job: Job;
  sink: RunSink;
  resolve: (result: JobResult) => void;
}

/** A stored job read back as the typed job it was made from; undefined when it no longer parses. */
export function readJob(record: JobRecord): Job | undefined {
  const parsed = Job.safeParse({ job_id: record.id, kind: record.type, payload: record.payload });
  return parsed.success ? parsed.data : undefined;
}

/** A step attempt's result from a job result, as the engine's StepRunner gives it. */
function stepResult(result: JobResult): StepAttemptResult {
  switch (result.kind) {
    case "step": {
      const { kind: _kind, ...attempt } = result satisfies StepJobResult;
      return attempt;
    }
    case "agent":
    case "bot":
      throw new Error(`a ${result.kind} job's result came back for a step attempt`);
    default:
      return assertExhaustive(result, "job kind");
  }
}

/**
 * JOB_REFUSED for a job every offer of which was refused: who refused it and why, and what kind
 * of runner would take it.
 */
function refusedError(record: JobRecord, refusals: readonly JobRefusal[]): ErrorInfo {
  const said = new Map<string, number>();
  for (const { runner_id, reason } of refusals) {
    const line = `runner ${runner_id}: ${reason}`;
    said.set(line, (said.get(line) ?? 0) + 1);
  }
  const who = [...said].map(([line, times]) => (times > 1 ? `${line} (${times} times)` : line));
  const { group, labels } = record.requirements;
  const wanted = labels.filter((label) => !label.startsWith("runner:"));
  const serves = [
    `a runner that runs ${record.type} jobs`,
    group ? `in group ${group}` : "",
    wanted.length > 0 ? `with labels [${wanted.join(",")}]` : "",
  ]
    .filter(Boolean)
    .join(" ");
  return errorInfo(
    "JOB_REFUSED",
    `the ${record.type} job was refused ${refusals.length} times and given up: ${who.join("; ")}`,
    `Start ${serves} that has what the job needs (a reachable Docker engine for bots and \`executor: docker\` hosts, the named agent installed for agent tasks), or change the job's group and labels to match one that does; \`runyard runners\` shows each runner's labels.`,
  );
}

/** Runs by host on a runner; `{}` and `{group, labels}` hosts stick to the runner that took them first. */
export interface HostPlacement {
  requirements: JobRequirements;
  host: string;
}

/** A job id that the same attempt always gets, so a resumed engine finds its job again. */
export function jobIdFor(request: StepAttemptRequest): string {
  const hash = createHash("sha256").update(`${request.step}\u0000${request.host}`).digest("hex").slice(0, 12);
  return `job_${request.run_id}_${hash}_${request.attempt}`;
}

/** Refusals after which a job fails with JOB_REFUSED instead of being offered again. */
export const maxJobRefusals = 3;
/** The back-off after a job's first refusal; it doubles with each refusal after. */
const refusalBackoffMs = 1000;

/** Stored reports read at once when applying them (each holds up to a whole batch of events). */
const storedReportsPage = 100;

function endedEarly(job: Job, code: "RUNNER_LOST" | "CANCELED", message: string): JobResult {
  return jobEndedEarly(job, code === "CANCELED" ? "canceled" : "failed", errorInfo(code, message));
}

/**
 * Turns the engine's work into jobs for runners, and runners' reports back into the run's events
 * and the job's result. Batches of events are stored exactly once.
 *
 * A report on a job this replica's engine waits for is applied at once. Any other report (the
 * run's engine lives on another replica, or has not asked for the job again after a restart or
 * an adoption) is stored as a job report and applied, in arrival order, by the engine that waits
 * for the job. Each job's reports are applied one at a time, stored ones first.
 */
export class JobBroker {
  private readonly waiters = new Map<string, Waiter>();
  /** Per job: the chain its reports are applied on, one at a time. */
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Waited jobs that may have stored reports to apply before anything else. */
  private readonly unread = new Set<string>();
  /** Highest output batch seen per job; checked before an event seq is spent. */
  private readonly lastBatch = new Map<string, number>();
  /** run id -> host -> runner id: where a run's host landed first. */
  private readonly pins = new Map<string, Map<string, string>>();

  constructor(
    private readonly store: Store,
    private readonly transport: JobTransport,
    private readonly logger: Logger,
    /** A runner took up a job of a run this replica carries: the run has started. */
    private readonly onAccepted: (runId: string, runnerId: string) => void = () => undefined,
    /** How long a runner gets to report a canceled job before the server ends it itself. */
    private readonly cancelDeadlineMs = 15_000,
  ) {}

  /**
   * A StepRunner whose attempts become `step` jobs for matching runners. Their output never
   * passes `io.onOutput`: the runner masks it and reports it as `step.output` events, which
   * `events` stores as they are.
   */
  stepRunner(runId: string, sink: RunSink, placement: HostPlacement, tenantId: string | null): StepRunner {
    return {
      runAttempt: async (request, io) => {
        const job: Job = { job_id: jobIdFor(request), kind: "step", payload: request };
        return stepResult(await this.runJob(job, { runId, sink, tenantId }, placement, io.signal));
      },
    };
  }

  /**
   * Runs one job of any kind on a matching runner; resolves with its result (a lost or canceled
   * job resolves too, with its error). Aborting `signal` cancels it.
   */
  runJob(
    job: Job,
    run: { runId: string; sink: RunSink; tenantId: string | null },
    placement: HostPlacement,
    signal: AbortSignal,
  ): Promise<JobResult> {
    return new Promise<JobResult>((resolve, reject) => {
      this.startJob(job, run.runId, run.sink, placement, run.tenantId, resolve).catch(reject);
      signal.addEventListener("abort", () => void this.cancelJob(job.job_id), { once: true });
    });
  }

  private async startJob(
    job: Job,
    runId: string,
    sink: RunSink,
    placement: HostPlacement,
    tenantId: string | null,
    resolve: (result: JobResult) => void,
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
    this.waiters.set(id, { job, sink, resolve });
    if (existing) {
      this.lastBatch.set(id, existing.last_event_seq);
      // Its runner may have reported while no engine here waited for it.
      this.unread.add(id);
      void this.inOrder(id, async () => undefined);
    } else {
      const pinned = this.pins.get(runId)?.get(placement.host);
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
    this.transport.dispatch();
  }

  /** Remembers where a run's host landed, so its later steps go to the same runner. */
  pin(record: JobRecord, runnerId: string): void {
    const job = readJob(record);
    if (!job) return;
    let hosts = this.pins.get(record.run_id);
    if (!hosts) {
      hosts = new Map();
      this.pins.set(record.run_id, hosts);
    }
    const host = jobHost(job);
    if (!hosts.has(host)) hosts.set(host, runnerId);
  }

  /** Restores pins of a run from its stored jobs (server restart). */
  async restorePins(runId: string): Promise<void> {
    for (const job of await this.store.jobs.list({ runId })) {
      if (job.runner_id && job.status !== "lost") this.pin(job, job.runner_id);
    }
  }

  forgetRun(runId: string): void {
    this.pins.delete(runId);
  }

  /**
   * A batch of events from the runner; resolves once stored (then the hub acks it): as the run's
   * events when this replica's engine waits for the job, else as a job report for the engine
   * that will. "unknown": the job has ended or does not exist.
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
    return this.inOrder(jobId, () => this.applyFinished(jobId, batches, reported));
  }

  private async applyFinished(
    jobId: string,
    batches: number,
    reported: JobResult,
  ): Promise<"done" | "missing-events"> {
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
    await this.store.jobs.update(jobId, { status: "done", result, lease_expires_at: null });
    this.settle(jobId, result);
    return "done";
  }

  /** A runner took up the job (the hub stored it `running`): pin its host, start its run. */
  async accepted(record: JobRecord, runnerId: string): Promise<void> {
    if (!this.waiters.has(record.id)) {
      await this.keepReport(record.id, runnerId, "accepted", 0, {});
      return;
    }
    await this.inOrder(record.id, async () => this.applyAccepted(record, runnerId));
  }

  private applyAccepted(record: JobRecord, runnerId: string): void {
    this.pin(record, runnerId);
    this.onAccepted(record.run_id, runnerId);
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
    // (an engine that begins to wait here later reads the stored reports itself, in startJob).
    if (this.waiters.has(jobId)) {
      this.unread.add(jobId);
      void this.inOrder(jobId, async () => undefined);
    } else this.transport.reported(job.run_id, jobId);
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
          const waiter = this.waiters.get(jobId);
          if (waiter) this.settle(jobId, undefined);
          return true;
        }
        return (await this.applyFinished(jobId, report.batch, result.data)) === "done";
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
          this.pins.get(report.run_id)?.delete(jobHost(waiter.job));
          this.settle(jobId, endedEarly(waiter.job, "RUNNER_LOST", why));
        }
        return true;
      }
      default:
        return assertExhaustive(report.kind, "job report kind");
    }
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
      const retryInMs = refusalBackoffMs * 2 ** (refusals.length - 1);
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
    const ended = await this.store.jobs.update(
      jobId,
      { status: "done", result, lease_expires_at: null },
      { ifStatus: ["assigned"] },
    );
    if (!ended) return "unknown";
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
      this.transport.reported(record.run_id, jobId);
    } else this.settle(jobId, result ?? undefined);
    return "failed";
  }

  /**
   * A job whose runner is gone or no longer holds it (lease expired, runner restarted without it,
   * shutdown grace passed): the attempt ends RUNNER_LOST, and the engine retries or interrupts.
   */
  async lost(record: JobRecord, why: string): Promise<void> {
    // A result it reported through a replica is waiting to be applied: it finished, it is not lost.
    if ((await this.store.jobReports.jobsWithReports([record.id], "finished")).length > 0) return;
    const updated = await this.store.jobs.update(
      record.id,
      { status: "lost", lease_expires_at: null },
      { ifStatus: ["assigned", "running"] },
    );
    if (!updated) return;
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
      this.transport.reported(record.run_id, record.id);
      return;
    }
    const job = readJob(record);
    if (!job) return this.settle(record.id, undefined);
    this.pins.get(record.run_id)?.delete(jobHost(job));
    this.settle(record.id, endedEarly(job, "RUNNER_LOST", why));
  }

  private async cancelJob(jobId: string): Promise<void> {
    const record = await this.store.jobs.get(jobId);
    if (!record || record.status === "done" || record.status === "lost") return;
    const job = readJob(record);
    if (!job) return;
    const result = endedEarly(job, "CANCELED", "the run was canceled");
    if (record.status === "queued") {
      // Only if no runner claimed it meanwhile; otherwise it is stopped on its runner below.
      const ended = await this.store.jobs.update(
        jobId,
        { status: "done", result, lease_expires_at: null },
        { ifStatus: ["queued"] },
      );
      if (ended) return this.settle(jobId, result);
    }
    const current = await this.store.jobs.get(jobId);
    if (current?.runner_id && (await this.transport.cancel(jobId, current.runner_id))) {
      // The runner stops the process group (SIGTERM, then SIGKILL after its grace) and reports;
      // should that report never come, the attempt ends here anyway.
      setTimeout(() => void this.endCanceled(jobId, result), this.cancelDeadlineMs).unref();
      return;
    }
    // No live runner holds it: the attempt ends here; a late report from a runner is refused.
    await this.endCanceled(jobId, result);
  }

  private async endCanceled(jobId: string, result: JobResult): Promise<void> {
    const ended = await this.store.jobs.update(
      jobId,
      { status: "done", result, lease_expires_at: null },
      { ifStatus: ["queued", "assigned", "running"] },
    );
    if (ended) this.settle(jobId, result);
  }

  private settle(jobId: string, result: JobResult | undefined): void {
    const waiter = this.waiters.get(jobId);
    this.waiters.delete(jobId);
    this.lastBatch.delete(jobId);
    this.unread.delete(jobId);
    if (!waiter) return;
    waiter.resolve(result ?? endedEarly(waiter.job, "RUNNER_LOST", "the job's stored record is unreadable"));
  }

  isWaited(jobId: string): boolean {
    return this.waiters.has(jobId);
  }
}
