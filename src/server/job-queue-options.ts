import type { Logger } from "../core/logger.js";
import type { JobRequirements, Store } from "../store/index.js";
import type { EventBus } from "./event-bus.js";

/** How the queue reaches runners: the sockets of this replica, and through them the fleet's. */
export interface RunnerLinks {
  /** Offer queued jobs to idle runners now, on every replica. */
  dispatch(): void;
  /** Ask the runner holding the job to stop it; false when that runner is connected nowhere. */
  cancel(jobId: string, runnerId: string): boolean | Promise<boolean>;
  /** The runner no longer holds the job (it was lost): its socket here, if any, is told to drop it. */
  drop(jobId: string, runnerId: string): void;
  /** Tell the replica carrying `runId` that the row of its job `jobId` changed (accepted, done, lost). */
  jobChanged(runId: string, jobId: string): void;
}

export interface JobQueueOptions {
  /** Its job verbs, and the run events runner batches go to. */
  store: Pick<Store, "jobs" | "events" | "outages">;
  /** Runner batches stored here are published to this replica's followers. */
  bus: EventBus;
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

/** Where a run's host runs: its requirements, and its name (hosts stick to their first runner). */
export interface HostPlacement {
  requirements: JobRequirements;
  host: string;
}
