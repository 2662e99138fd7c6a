import type { Job } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import type { HeldJob, RunnerInfo } from "../core/protocol.js";
import type { JobRecord, Store } from "../store/index.js";
import { storeRetryAfterSeconds } from "./error-responses.js";
import { readJob } from "./job-records.js";

/*
 * Which jobs a runner holds, and for how long: the next job it is given with its lease, what
 * its hello settles (its inventory), and the leader's checks of leases that lapsed.
 */

/** What lease keeping needs of the job queue. */
export interface LeaseHolder {
  readonly store: Pick<Store, "jobs" | "outages">;
  /** Offers queued jobs to idle runners; tells a runner's socket to drop a job it lost. */
  readonly links: { dispatch(): void; drop(jobId: string, runnerId: string): void };
  readonly logger: Logger;
  /** A job's lease; heartbeats renew it. */
  readonly leaseMs: number;
  /** The runner took the job up. */
  accept(jobId: string, runnerId: string): Promise<void>;
  /** The job's runner is gone or no longer holds it. */
  lost(record: JobRecord, why: string, options?: { journaled?: boolean }): Promise<void>;
  /** This server among the replicas: it claims only for runners connected to it. */
  readonly replicaId: string;
  /** The job an engine here stored (checked then), if it is one. */
  madeHere(jobId: string): Job | undefined;
}

/** A job handed to a runner, with the deadline of its lease. */
export interface Assignment {
  job: Job;
  lease_expires_at: string;
}

/** Bots one runner runs at once, besides its capacity of other work. */
const maxBotsPerRunner = 50;

/** What a runner saying hello holds, as the queue sees it. */
export interface Inventory {
  /** Jobs leased to it that it still holds (id -> kind): it goes on with them. */
  resumed: Map<string, string>;
  /** Jobs it lists that are not its to hold: it drops them. */
  drop: string[];
  /** Jobs it lists that ended while it was away: it stops them. */
  cancel: string[];
}

/**
 * A runner says hello listing the jobs it holds. Its list is the truth: a job it accepted but
 * does not list died with an earlier life of the runner, and is lost now rather than when its
 * lease lapses; one it never accepted (its assign never arrived) goes back to the queue. The
 * jobs it goes on with get a fresh lease.
 */
export async function takeInventory(
  queue: LeaseHolder,
  runnerId: string,
  held: readonly HeldJob[],
  reaped: readonly string[],
): Promise<Inventory> {
  const listed = new Set(held.map((job) => job.id));
  const inventory: Inventory = { resumed: new Map(), drop: [], cancel: [] };
  let requeued = false;
  for (const job of await queue.store.jobs.list({ runnerId, statuses: ["assigned", "running"] })) {
    if (listed.has(job.id)) {
      // A runner holds only jobs it took up: an accept that died with an earlier socket (or
      // still waits behind it) is taken as said now.
      if (job.status === "assigned") await queue.accept(job.id, runnerId);
      inventory.resumed.set(job.id, job.type);
      continue;
    }
    if (reaped.includes(job.id)) {
      await queue.lost(
        job,
        `runner ${runnerId} restarted and killed what was left of this step from its previous life`,
        { journaled: true },
      );
      continue;
    }
    // Never accepted and not held: its assign never reached the runner (the link dropped, or
    // the replica that claimed it died), so nothing of it ran. It goes back to the queue.
    if (job.status === "assigned" && (await queue.store.jobs.giveBack(job.id, runnerId))) {
      requeued = true;
      continue;
    }
    await queue.lost(job, `runner ${runnerId} came back without this job (it restarted or gave the job up)`);
  }
  if (requeued) queue.links.dispatch();
  for (const { id } of held) {
    if (inventory.resumed.has(id)) continue;
    const job = await queue.store.jobs.get(id);
    // A finished job is told `done` when the runner sends its result again. One the server
    // ended while its runner was away (a bot stopped meanwhile) still runs there: canceled, so
    // it stops; a runner that has the result already ignores the cancel.
    if (job?.status === "done" && job.runner_id === runnerId) inventory.cancel.push(id);
    else inventory.drop.push(id);
  }
  await queue.store.jobs.renewLeases(runnerId, queue.leaseMs, [...inventory.resumed.keys()]);
  return inventory;
}

/** The leader's checks of the leases: every quarter lease, at most every 500 ms. */
export class LeaseChecks {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly queue: LeaseHolder) {}

  /** Checks leases every quarter lease (at most every 500 ms) while `isLeader` says so. */
  start(isLeader: () => boolean): void {
    this.timer = setInterval(
      () => {
        if (isLeader()) void this.expire();
      },
      Math.min(500, this.queue.leaseMs / 4),
    );
  }

  /**
   * Jobs whose runner stopped heartbeating past the lease are lost, and their sockets told. Also
   * one the server never heard accepted: a runner sends `accept` and starts the step at once, and
   * an accept can die with a socket, so the step may have begun. Offering it again could run it
   * twice (its first attempt's output already stored under the same batch numbers); a runner
   * that comes back in time settles it instead (`inventory`).
   */
  private async expire(): Promise<void> {
    // No runner could renew a lease while the database was away: each gets a whole lease from
    // its return, beyond the two Retry-After waits in which a runner answered 503 comes back,
    // to reconnect and heartbeat before its jobs are taken for lost.
    const lost = this.queue.store.outages.lastLost();
    if (lost !== undefined && Date.now() - lost < this.queue.leaseMs + 2 * storeRetryAfterSeconds * 1000)
      return;
    try {
      for (const job of await this.queue.store.jobs.expired(new Date().toISOString())) {
        const runnerId = job.runner_id;
        await this.queue.lost(
          job,
          job.status === "assigned"
            ? `runner ${runnerId} stopped heartbeating before the server heard it take the job up; its lease expired (whether the step began is not known)`
            : `runner ${runnerId} stopped heartbeating; its lease expired`,
        );
        if (runnerId) this.queue.links.drop(job.id, runnerId);
      }
    } catch (error) {
      this.queue.logger.error({ err: error }, "lease check failed");
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * The next job for a runner that holds jobs of kinds `held`, or undefined when it has no room
 * or nothing waits for it. `capacity` counts its work (steps, agent turns); bots, mostly idle
 * containers that live for hours, have slots of their own (maxBotsPerRunner).
 */
export async function claimJob(
  queue: LeaseHolder,
  runner: RunnerInfo,
  held: readonly string[],
): Promise<Assignment | undefined> {
  const bots = held.filter((kind) => kind === "bot").length;
  const workRoom = held.length - bots < runner.capacity;
  const botRoom = bots < maxBotsPerRunner;
  // Only the kinds it has a handler for: a runner offered a job it cannot run would refuse it.
  const kinds = runner.kinds.filter((kind) => (kind === "bot" ? botRoom : workRoom));
  if (kinds.length === 0) return undefined;
  for (;;) {
    const record = await queue.store.jobs.claim(
      {
        id: runner.id,
        group: runner.group,
        labels: [...runner.labels, `runner:${runner.id}`],
        tenant_id: runner.tenant_id,
        shared: runner.shared,
        isolation: runner.isolation,
        replica_id: queue.replicaId,
        onlyTypes: kinds,
      },
      queue.leaseMs,
    );
    if (!record) return undefined;
    // A job an engine here stored is the one it made (checked then); any other is read from its row.
    const job = queue.madeHere(record.id) ?? readJob(record);
    if (!job) {
      await queue.lost(record, "its stored payload no longer matches its kind");
      continue;
    }
    return {
      job,
      lease_expires_at: record.lease_expires_at ?? new Date(Date.now() + queue.leaseMs).toISOString(),
    };
  }
}
