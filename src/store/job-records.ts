import type { JobKind } from "../core/jobs/index.js";
import type { RunnerIsolation } from "./runners.js";

/* What a stored job is: its states and kinds, its record, and the inputs of the job verbs (jobs.ts). */

/** queued -> assigned (claimed, lease running) -> running (runner accepted) -> done | lost. */
export type JobStatus = "queued" | "assigned" | "running" | "done" | "lost";

/** Which runners may take a job. */
export interface JobRequirements {
  /** Only runners of this group; absent for any group. */
  group?: string;
  /** Every one of these labels must be among the runner's labels. */
  labels: string[];
  /** Only runners of this tenant; null or absent for any runner. */
  tenant_id?: string | null;
}

/** One unit of work for a runner: a step attempt, an agent task or a bot's life. */
export interface JobRecord {
  id: string;
  run_id: string;
  type: JobKind;
  status: JobStatus;
  /** As given to `jobs.create`; `group` is absent and `tenant_id` null when unrestricted. */
  requirements: JobRequirements;
  /** What the runner needs to do the job (e.g. a StepAttemptRequest), stored as JSON. */
  payload: unknown;
  /** What came back (e.g. a StepAttemptResult), or null. */
  result: unknown | null;
  /** The runner the job is assigned to, or null while queued. */
  runner_id: string | null;
  /** When the assignment lapses unless renewed by heartbeats; see `jobs.expired`. */
  lease_expires_at: string | null;
  /** Highest event batch seq stored for this job (see `events.append`); 0 before the first. */
  last_event_seq: number;
  /** The runners that refused the job so far and why, oldest first (see `jobs.refuse`). */
  refusals: JobRefusal[];
  /** No runner claims the job before this time (back-off after a refusal); null: at once. */
  not_before: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Why a job was lost, kept on its row (`result`) for whichever replica's engine reads it:
 * `taken_up` says its runner had taken it up (accepted it, or journaled it before dying), so its
 * step may have begun; otherwise whether it began is unknown.
 */
export interface JobLoss {
  message: string;
  taken_up: boolean;
}

/** A runner gave a job back unstarted because it cannot run it (see `jobs.refuse`). */
export interface JobRefusal {
  runner_id: string;
  reason: string;
}

/** The jobs waiting for a runner (`jobs.queue`). */
export interface QueuedJobs {
  queued: number;
  oldest_created_at: string | null;
}

/** What `jobs.create` needs; a new job is `queued`. */
export interface NewJob {
  /** Defaults to a fresh `newId("job")`. */
  id?: string;
  run_id: string;
  /** Defaults to `step`. */
  type?: JobKind;
  requirements: JobRequirements;
  payload: unknown;
  created_at?: string;
}

/** The runner asking for work, as `jobs.claim` matches it against job requirements. */
export interface ClaimingRunner {
  id: string;
  group: string;
  labels: readonly string[];
  /** A runner of a tenant takes only that tenant's jobs. */
  tenant_id: string | null;
  /**
   * Outside any tenant: takes jobs of every tenant too, besides those of none, but only while
   * `isolation` is not `none` (a shared runner must keep each run from the others).
   */
  shared: boolean;
  isolation: RunnerIsolation;
  /**
   * The replica claiming for the runner: it claims only while the runner is recorded as connected
   * to it (a replica with a half-open socket to a runner that moved on claims nothing).
   */
  replica_id?: string;
  /**
   * Claim only jobs of these kinds: those the runner has a handler for and room for (a runner
   * whose capacity is full may still have bot slots).
   */
  onlyTypes?: readonly JobKind[];
}

/** Filters for `jobs.list`; jobs come oldest first. */
export interface ListJobsQuery {
  /** These jobs only (at most a few thousand: one parameter each). */
  ids?: readonly string[];
  runnerId?: string;
  runId?: string;
  statuses?: readonly JobStatus[];
}
