import type { Job } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import type { HeldJob, RunnerInfo } from "../core/protocol.js";
import type { JobRecord, Store } from "../store/index.js";
import { storeRetryAfterSeconds } from "./error-responses.js";
import { readJob } from "./job-records.js";

/* Which jobs a runner holds, for how long: its next job and lease, its hello's inventory, lapsed leases. */

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

/**
 * A job claimed for a runner. `nothingElseQueued`: the claim had room for every kind the runner
 * runs and no other job waited for it, so a claim right after would find nothing until the queue
 * changes (RunnerSession.fill then waits instead of asking).
 */
export interface Claimed {
  assignment: Assignment;
  nothingElseQueued: boolean;
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
 * A runner's hello lists the jobs it holds, and its list is the truth: one it accepted but omits died
 * with an earlier life (lost now, not when its lease lapses); one never accepted goes back to the queue.
 * The jobs it goes on with get a fresh lease.
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
      // It holds only jobs it took up: an accept lost with an earlier socket (or behind it) counts now.
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
    // Never accepted nor held: its assign never arrived (link dropped, claiming replica died): nothing ran.
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
    // A finished job is told `done` when its result comes again; one ended while its runner was away (a
    // bot stopped meanwhile) still runs there: cancel it (a runner that has the result ignores that).
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

  start(isLeader: () => boolean): void {
    this.timer = setInterval(
      () => {
        if (isLeader()) void this.expire();
      },
      Math.min(500, this.queue.leaseMs / 4),
    );
  }

  /**
   * Jobs whose runner stopped heartbeating past the lease are lost, their sockets told. So is one never
   * heard accepted: a runner starts the step as it sends `accept`, which can die with a socket, so
   * offering it again could run it twice (output stored under the same batch numbers); a runner back in
   * time settles it instead (`inventory`).
   */
  private async expire(): Promise<void> {
    // No lease could be renewed while the database was away: after its return runners get a whole lease
    // plus the two Retry-After waits of a 503 to reconnect and heartbeat before their jobs are lost.
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
 * The next job for a runner holding jobs of kinds `held`, if it has room. `capacity` counts its work
 * (steps, agent turns); bots, mostly idle containers living for hours, have slots of their own.
 * Without a job: "nothing queued" when it had room for every kind it runs and none was queued for
 * it, so that only a change to the queue can give it one (RunnerSession.fill); "no room" otherwise.
 */
export async function claimJob(
  queue: LeaseHolder,
  runner: RunnerInfo,
  held: readonly string[],
): Promise<Claimed | "nothing queued" | "no room"> {
  const bots = held.filter((kind) => kind === "bot").length;
  const workRoom = held.length - bots < runner.capacity;
  const botRoom = bots < maxBotsPerRunner;
  // Only the kinds it has a handler for: a runner offered a job it cannot run would refuse it.
  const kinds = runner.kinds.filter((kind) => (kind === "bot" ? botRoom : workRoom));
  if (kinds.length === 0) return "no room";
  const everyKind = kinds.length === runner.kinds.length;
  for (;;) {
    const claimed = await queue.store.jobs.claimNext(
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
    if (!claimed) return everyKind ? "nothing queued" : "no room";
    const record = claimed.job;
    const job = queue.madeHere(record.id) ?? readJob(record);
    if (!job) {
      await queue.lost(record, "its stored payload no longer matches its kind");
      continue;
    }
    return {
      assignment: {
        job,
        lease_expires_at: record.lease_expires_at ?? new Date(Date.now() + queue.leaseMs).toISOString(),
      },
      nothingElseQueued: everyKind && !claimed.more,
    };
  }
}
