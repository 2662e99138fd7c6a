import { isFinalStatus } from "../../core/events.js";
import type { Logger } from "../../core/logger.js";
import type { RunRecord, Store } from "../../store/index.js";
import type { JobQueue } from "../job-queue.js";
import type { ActiveRun } from "./run-kind.js";

/** How long a workflow run waits for a runner before it is parked, unless the server says otherwise. */
export const defaultParkQueuedAfterMs = 100;
/** How often the runs waiting for a runner are looked over for parking, at most. */
const parkRoundMs = 500;
/** Parked runs' jobs read in one statement by the sweep (`recheck`). */
const parkedSweepChunk = 500;

/** A run whose engine runs here, as parking looks at it. */
export interface ParkableRun extends Pick<ActiveRun, "signal" | "sink"> {
  started: boolean;
  /** Its kind may be parked, and nothing but `run.queued` and notices was stored before it started here. */
  parkable: boolean;
  /** When its engine started here (Date.now()). */
  since: number;
}

/** What parking needs of the run service that carries the runs. */
export interface ParkingService {
  /** The runs whose engines run here, by id: a parked one leaves it. */
  readonly active: Map<string, ParkableRun>;
  /** Starts the engines of `records` again from their stored events. */
  carryOn(records: readonly RunRecord[], why: string): Promise<void>;
}

/**
 * Workflow runs carried here without an engine (docs/scale.md): one untaken for `parkQueuedAfterMs`,
 * begun on nothing, waiting only for queued jobs (`JobQueue.park`), lives on as its rows, so ten
 * thousand queued runs cost their ids, not ten thousand engines. A change of a job restarts its engine.
 */
export class ParkedRuns {
  /** The parked runs' ids, and the jobs each waits for. */
  private readonly parked = new Map<string, readonly string[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly service: ParkingService,
    private readonly store: Pick<Store, "runs" | "fleet" | "jobs">,
    private readonly jobs: Pick<JobQueue, "park" | "endJobs">,
    private readonly logger: Logger,
    private readonly replicaId: string,
  ) {}

  /** Parks, every `parkRoundMs` (at most), the runs that have waited `afterMs` for a runner. */
  start(afterMs = defaultParkQueuedAfterMs): void {
    this.timer = setInterval(() => this.parkWaiting(afterMs), Math.max(50, Math.min(parkRoundMs, afterMs)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  has(runId: string): boolean {
    return this.parked.has(runId);
  }

  get size(): number {
    return this.parked.size;
  }

  private parkWaiting(afterMs: number): void {
    const now = Date.now();
    const waiting = new Set<string>();
    for (const [id, run] of this.service.active) {
      if (!run.parkable || run.started || run.signal.aborted || !run.sink.quiet) continue;
      if (now - run.since >= afterMs) waiting.add(id);
    }
    if (waiting.size === 0) return;
    for (const [id, jobs] of this.jobs.park(waiting)) {
      this.service.active.delete(id);
      this.parked.set(id, jobs);
    }
  }

  /** A job of a run here changed (taken up, lost, canceled): a parked run's engine starts again. */
  jobChanged(runId: string): void {
    if (this.parked.has(runId)) void this.unpark(runId, "a runner took up work of a parked run");
  }

  /** A parked run's engine, started again from the store; resolves once it is active (or gone). */
  private async unpark(runId: string, why: string): Promise<void> {
    const jobs = this.parked.get(runId);
    if (!jobs || !this.parked.delete(runId)) return;
    const read = async (): Promise<RunRecord | undefined> => {
      // Adopted by another replica meanwhile (this one was taken for dead), or ended: not ours.
      if ((await this.store.fleet.runReplica(runId)) !== this.replicaId) return undefined;
      const record = await this.store.runs.get(runId);
      return record && !isFinalStatus(record.status) ? record : undefined;
    };
    const record = await read().catch((error: unknown) => {
      // Unreadable now: it stays parked, and the next change (or the sweep) tries again.
      this.parked.set(runId, jobs);
      this.logger.warn({ err: error, runId }, "cannot read a parked run");
      return undefined;
    });
    if (record) await this.service.carryOn([record], why);
  }

  /**
   * The cancel is stored first, so every engine started for the run (here or by an adopting replica)
   * starts aborted; then its jobs end, so no runner takes one up while its engine restarts to end it.
   */
  async cancel(runId: string): Promise<void> {
    await this.store.fleet.requestRunCancel(runId);
    await this.jobs.endJobs(runId);
    await this.unpark(runId, "canceling a parked run");
  }

  /** In case a fleet message was lost: rereads parked runs' jobs; a run whose job left the queue goes on. */
  async recheck(): Promise<void> {
    const byJob = new Map<string, string>();
    for (const [runId, jobs] of this.parked) for (const job of jobs) byJob.set(job, runId);
    const ids = [...byJob.keys()];
    for (let start = 0; start < ids.length; start += parkedSweepChunk) {
      const moved = await this.store.jobs.list({
        ids: ids.slice(start, start + parkedSweepChunk),
        // Not `assigned`: its runner's accept (or the lease's end) changes the row again.
        statuses: ["running", "done", "lost"],
      });
      for (const job of moved) this.jobChanged(job.run_id);
    }
  }
}
