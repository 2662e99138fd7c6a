import { createHash } from "node:crypto";
import { errorInfo } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import {
  attemptEndedEarly,
  type StepAttemptRequest,
  StepAttemptResult,
  type StepOutputSink,
  type StepRunner,
} from "../core/step-attempt.js";
import type { OutputChunk } from "../runner/protocol.js";
import type { JobRecord, JobRequirements, Store } from "../store/types.js";
import type { RunSink } from "./run-sink.js";

/** How the broker reaches runners; the runner hub implements it. */
export interface JobTransport {
  /** Offer queued jobs to idle runners now. */
  dispatch(): void;
  /** Ask the runner holding the job to stop it; false when that runner is not connected. */
  cancel(jobId: string, runnerId: string): boolean;
}

/** An engine waiting for one job's result. */
interface Waiter {
  runId: string;
  sink: RunSink;
  onOutput: StepOutputSink;
  resolve: (result: StepAttemptResult) => void;
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

function failedResult(code: "RUNNER_LOST" | "CANCELED", message: string): StepAttemptResult {
  return attemptEndedEarly(code === "CANCELED" ? "canceled" : "failed", errorInfo(code, message));
}

/**
 * Turns the engine's step attempts into jobs for runners, and runners' reports back into the
 * run's events and the attempt's result. Batches of output are stored exactly once.
 */
export class JobBroker {
  private readonly waiters = new Map<string, Waiter>();
  /** Highest output batch seen per job; checked before an event seq is spent. */
  private readonly lastBatch = new Map<string, number>();
  /** run id -> host -> runner id: where a run's host landed first. */
  private readonly pins = new Map<string, Map<string, string>>();
  transport: JobTransport | undefined;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    /** How long a runner gets to report a canceled job before the server ends it itself. */
    private readonly cancelDeadlineMs = 15_000,
  ) {}

  /** A StepRunner whose attempts become jobs for matching runners. */
  stepRunner(runId: string, sink: RunSink, placement: HostPlacement, tenantId: string | null): StepRunner {
    return {
      runAttempt: (request, io) =>
        new Promise<StepAttemptResult>((resolve, reject) => {
          this.startJob(runId, sink, placement, tenantId, request, io.onOutput, resolve).catch(reject);
          io.signal.addEventListener("abort", () => void this.cancelJob(jobIdFor(request)), { once: true });
        }),
    };
  }

  private async startJob(
    runId: string,
    sink: RunSink,
    placement: HostPlacement,
    tenantId: string | null,
    request: StepAttemptRequest,
    onOutput: StepOutputSink,
    resolve: (result: StepAttemptResult) => void,
  ): Promise<void> {
    const id = jobIdFor(request);
    const existing = await this.store.getJob(id);
    if (existing?.status === "done") {
      resolve(StepAttemptResult.parse(existing.result));
      return;
    }
    if (existing?.status === "lost") {
      resolve(failedResult("RUNNER_LOST", `runner ${existing.runner_id} stopped heartbeating`));
      return;
    }
    this.waiters.set(id, { runId, sink, onOutput, resolve });
    if (existing) {
      this.lastBatch.set(id, existing.last_event_seq);
    } else {
      const pinned = this.pins.get(runId)?.get(placement.host);
      const labels = [...placement.requirements.labels, ...(pinned ? [`runner:${pinned}`] : [])];
      await this.store.createJob({
        id,
        run_id: runId,
        type: "step",
        requirements: { ...placement.requirements, labels, tenant_id: tenantId },
        payload: request,
      });
      this.lastBatch.set(id, 0);
    }
    this.transport?.dispatch();
  }

  /** Remembers where a run's host landed, so its later steps go to the same runner. */
  pin(job: JobRecord, runnerId: string): void {
    const request = job.payload as StepAttemptRequest;
    let hosts = this.pins.get(job.run_id);
    if (!hosts) {
      hosts = new Map();
      this.pins.set(job.run_id, hosts);
    }
    if (!hosts.has(request.host)) hosts.set(request.host, runnerId);
  }

  /** Restores pins of a run from its stored jobs (server restart). */
  async restorePins(runId: string): Promise<void> {
    for (const job of await this.store.listJobs({ runId })) {
      if (job.runner_id && job.status !== "lost") this.pin(job, job.runner_id);
    }
  }

  forgetRun(runId: string): void {
    this.pins.delete(runId);
  }

  /** A batch of output from the runner; resolves once stored (then the hub acks it). */
  async output(
    jobId: string,
    batch: number,
    chunks: OutputChunk[],
  ): Promise<"stored" | "duplicate" | "unknown"> {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return "unknown";
    const last = this.lastBatch.get(jobId) ?? 0;
    if (batch <= last) return "duplicate";
    this.lastBatch.set(jobId, batch);
    await waiter.sink.jobBatch(jobId, batch, () => {
      for (const chunk of chunks) waiter.onOutput(chunk.stream, chunk.data);
    });
    return "stored";
  }

  /** The runner's result; stored before the engine goes on. */
  async finished(
    jobId: string,
    batches: number,
    result: StepAttemptResult,
  ): Promise<"done" | "missing-output"> {
    const waiter = this.waiters.get(jobId);
    if (waiter && (this.lastBatch.get(jobId) ?? 0) < batches) return "missing-output";
    await waiter?.sink.drain();
    await this.store.updateJob(jobId, { status: "done", result, lease_expires_at: null });
    this.settle(jobId, result);
    return "done";
  }

  /**
   * A job whose runner is gone or no longer holds it (lease expired, runner restarted without it,
   * shutdown grace passed): the attempt ends RUNNER_LOST, and the engine retries or interrupts.
   */
  async lost(job: JobRecord, why: string): Promise<void> {
    const updated = await this.store.updateJob(
      job.id,
      { status: "lost", lease_expires_at: null },
      { ifStatus: ["assigned", "running"] },
    );
    if (!updated) return;
    this.logger.warn({ jobId: job.id, runnerId: job.runner_id }, `job lost: ${why}`);
    this.pins.get(job.run_id)?.delete((job.payload as StepAttemptRequest).host);
    this.settle(job.id, failedResult("RUNNER_LOST", why));
  }

  private async cancelJob(jobId: string): Promise<void> {
    const job = await this.store.getJob(jobId);
    if (!job || job.status === "done" || job.status === "lost") return;
    const result = failedResult("CANCELED", "the run was canceled");
    if (job.status === "queued") {
      // Only if no runner claimed it meanwhile; otherwise it is stopped on its runner below.
      const ended = await this.store.updateJob(
        jobId,
        { status: "done", result, lease_expires_at: null },
        { ifStatus: ["queued"] },
      );
      if (ended) return this.settle(jobId, result);
    }
    const current = await this.store.getJob(jobId);
    if (current?.runner_id && this.transport?.cancel(jobId, current.runner_id)) {
      // The runner stops the process group (SIGTERM, then SIGKILL after its grace) and reports;
      // should that report never come, the attempt ends here anyway.
      setTimeout(() => void this.endCanceled(jobId, result), this.cancelDeadlineMs).unref();
      return;
    }
    // No live runner holds it: the attempt ends here; a late report from a runner is refused.
    await this.endCanceled(jobId, result);
  }

  private async endCanceled(jobId: string, result: StepAttemptResult): Promise<void> {
    const ended = await this.store.updateJob(
      jobId,
      { status: "done", result, lease_expires_at: null },
      { ifStatus: ["queued", "assigned", "running"] },
    );
    if (ended) this.settle(jobId, result);
  }

  private settle(jobId: string, result: StepAttemptResult): void {
    const waiter = this.waiters.get(jobId);
    this.waiters.delete(jobId);
    this.lastBatch.delete(jobId);
    waiter?.resolve(result);
  }

  isWaited(jobId: string): boolean {
    return this.waiters.has(jobId);
  }
}
