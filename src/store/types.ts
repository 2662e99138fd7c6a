import type { RunEvent } from "../core/events.js";
import type { JobKind } from "../core/jobs/index.js";
import type { ArtifactsRepo } from "./artifacts.js";
import type { AuditRepo } from "./audit.js";
import type { BotsRepo } from "./bots.js";
import type { RunnerIsolation, RunnersRepo } from "./runners.js";
import type { RunRecord, RunsRepo } from "./runs.js";
import type { SecretsRepo } from "./secrets.js";
import type { ServerKeysRepo } from "./server-keys.js";
import type { SessionsRepo } from "./sessions.js";
import type { TokensRepo } from "./tokens.js";
import type { UsersRepo } from "./users.js";

/*
 * The store's public contract (DESIGN.md section 9): `Store`, one repository per record type,
 * each declared with its records beside its queries (`runs.ts` has `RunsRepo` and `RunRecord`);
 * this file keeps what they share. The SQLite file, the in-memory database and PostgreSQL are
 * backends behind it. Field names are snake_case, as in the event spine and the HTTP API, so
 * records pass through unchanged. Every timestamp is ISO-8601 text in UTC
 * (`Date#toISOString()`); timestamps given to the store are normalised to that form, which keeps
 * them sortable as text.
 */

/** A compare-and-set guard: the update applies only while the record is in one of these states. */
export interface IfStatus<S extends string> {
  ifStatus?: readonly S[];
}

/** Ties a batch of events to the job that produced it, so a re-sent batch is stored once. */
export interface JobBatchRef {
  id: string;
  /** The producer's batch number for this job, increasing from 1 (e.g. the batch's highest event seq). */
  seq: number;
}

/** Options of `appendEvents`. */
export interface AppendEventsOptions {
  job?: JobBatchRef;
  /**
   * The replica that numbered the events: they are stored only while the run is carried by it
   * (`runs.replica_id`), else nothing is written and REPLICA_FENCED is thrown. A replica the
   * fleet presumed dead can thus never add events to a run another replica adopted.
   */
  carrier?: string;
}

/** What `appendEvents` did. Either way, once it returns, every event of the batch is stored. */
export interface AppendResult {
  /** True when `job.seq` was not above the job's stored `last_event_seq`: nothing was written. */
  duplicate: boolean;
  /** Events actually inserted; an event whose `(run_id, seq)` is stored already is skipped. */
  inserted: number;
}

/** Which events `listEvents` returns, ascending by seq. */
export interface ListEventsQuery {
  /** Only events with a seq above this (SSE `Last-Event-ID`, `?after=`). Default 0. */
  after?: number;
  /** Default 1000, at most 10000; page with `after` set to the last seq received. */
  limit?: number;
  /**
   * Only events with a seq below this: the `limit` newest of them, still in seq order. A browser
   * shows a huge log's tail first and pages back with `before` set to the first seq it has.
   */
  before?: number;
}

export const jobStatuses = ["queued", "assigned", "running", "done", "lost"] as const;
/** queued -> assigned (claimed, lease running) -> running (runner accepted) -> done | lost. */
export type JobStatus = (typeof jobStatuses)[number];

/** What a job is; only step attempts for now, agent tasks later. */
export type JobType = JobKind;

/** Which runners may take a job. */
export interface JobRequirements {
  /** Only runners of this group; absent for any group. */
  group?: string;
  /** Every one of these labels must be among the runner's labels. */
  labels: string[];
  /** Only runners of this tenant; null or absent for any runner. */
  tenant_id?: string | null;
}

/** One unit of work for a runner: one step attempt (later also an agent task). */
export interface JobRecord {
  id: string;
  run_id: string;
  type: JobType;
  status: JobStatus;
  /** As given to `createJob`; `group` is absent and `tenant_id` null when unrestricted. */
  requirements: JobRequirements;
  /** What the runner needs to do the job (e.g. a StepAttemptRequest), stored as JSON. */
  payload: unknown;
  /** What came back (e.g. a StepAttemptResult), or null. */
  result: unknown | null;
  /** The runner the job is assigned to, or null while queued. */
  runner_id: string | null;
  /** When the assignment lapses unless renewed by heartbeats; see `expiredJobs`. */
  lease_expires_at: string | null;
  /** Highest event batch seq stored for this job (see `appendEvents`); 0 before the first. */
  last_event_seq: number;
  /** The runners that refused the job so far and why, oldest first (see `refuseJob`). */
  refusals: JobRefusal[];
  /** No runner claims the job before this time (back-off after a refusal); null: at once. */
  not_before: string | null;
  created_at: string;
  updated_at: string;
}

/** A runner gave a job back unstarted because it cannot run it (see `refuseJob`). */
export interface JobRefusal {
  runner_id: string;
  reason: string;
}

/** The jobs waiting for a runner (`jobQueue`). */
export interface JobQueue {
  queued: number;
  oldest_created_at: string | null;
}

/** What `createJob` needs; a new job is `queued`. */
export interface NewJob {
  /** Defaults to a fresh `newId("job")`. */
  id?: string;
  run_id: string;
  /** Defaults to `step`. */
  type?: JobType;
  requirements: JobRequirements;
  payload: unknown;
  created_at?: string;
}

/** The fields of a job the server changes; absent keys are left as they are. */
export type JobPatch = Partial<
  Pick<JobRecord, "status" | "payload" | "result" | "runner_id" | "lease_expires_at">
>;

/** The runner asking for work, as `claimJob` matches it against job requirements. */
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

/** Filters for `listJobs`; jobs come oldest first. */
export interface ListJobsQuery {
  runnerId?: string;
  runId?: string;
  statuses?: readonly JobStatus[];
}

/** A server process on the database; several replicas share one PostgreSQL database. */
export interface ReplicaRecord {
  /** Stable per home folder (`<home>/replica-id`), else new at each start. */
  id: string;
  hostname: string;
  /** Where the replica's API listens, as it says itself. */
  url: string | null;
  version: string;
  started_at: string;
  /** Its last heartbeat; a replica not seen for the replica lease is presumed dead. */
  seen_at: string;
}

/** What a replica says of itself at start and in each heartbeat. */
export type ReplicaInput = Pick<ReplicaRecord, "id" | "hostname" | "url" | "version">;

/** What a runner reported on a job whose engine was not where the runner is connected. */
export type JobReportKind = "accepted" | "events" | "finished" | "lost";

/** One stored report (`Store.addJobReport`). */
export interface JobReport {
  /** Arrival order. */
  id: number;
  job_id: string;
  run_id: string;
  kind: JobReportKind;
  /** The event batch number (`events`), the batch count (`finished`), else 0. */
  batch: number;
  runner_id: string | null;
  /** The report itself, as JSON (events, a result, a reason); sealed at rest. */
  body: unknown;
  created_at: string;
}

export type NewJobReport = Omit<JobReport, "id" | "created_at">;

/** Each run's event log, ascending by seq. */
export interface RunEventsRepo {
  /**
   * Stores a batch of events in one transaction and raises `runs.last_seq`. With `job`, the
   * job's `last_event_seq` is raised to `job.seq` in the same transaction, and a batch whose
   * `job.seq` is not above it is a duplicate and writes nothing: a re-sent batch is stored once.
   * An event whose `(run_id, seq)` is stored already is skipped, never stored twice.
   * Events must be valid `RunEvent`s (the server parses what runners send before this).
   */
  append(events: readonly RunEvent[], opts?: AppendEventsOptions): Promise<AppendResult>;
  /** A run's events ascending by seq, parsed with the `RunEvent` schema. */
  list(runId: string, query?: ListEventsQuery): Promise<RunEvent[]>;
  /**
   * Deletes a run's oldest `step.output` events, at least `bytes` of their output text (whole
   * events); answers the output bytes deleted. A bot's rolling log keeps its newest lines so.
   */
  dropOldestOutput(runId: string, bytes: number): Promise<number>;
  /** The highest stored event seq of a run (0 before any), or undefined for an unknown run. */
  lastSeq(runId: string): Promise<number | undefined>;
}

/** The jobs for runners: one step attempt, agent task or bot life each. */
export interface JobsRepo {
  /** Queues a job for a run and returns it. */
  create(input: NewJob): Promise<JobRecord>;
  /** One job, or undefined. */
  get(id: string): Promise<JobRecord | undefined>;
  /** Changes a job; undefined when it does not exist or its status is not in `ifStatus`. */
  update(id: string, patch: JobPatch, opts?: IfStatus<JobStatus>): Promise<JobRecord | undefined>;
  /**
   * Atomically takes the oldest queued job this runner may run (group, labels and tenant match),
   * marks it `assigned` to the runner with a lease of `leaseMs`, and returns it; undefined when
   * none is waiting. Concurrent claimers never get the same job.
   */
  claim(runner: ClaimingRunner, leaseMs: number): Promise<JobRecord | undefined>;
  /**
   * A job assigned to `runnerId` that the runner refused unstarted goes back to the queue with
   * `refusals` as its whole list and no claim before `notBefore`; undefined when it is no longer
   * assigned to that runner.
   */
  refuse(
    id: string,
    runnerId: string,
    refusals: readonly JobRefusal[],
    notBefore: Date,
  ): Promise<JobRecord | undefined>;
  /**
   * Extends the lease of every assigned or running job of a runner (with `jobIds`, of those
   * only: the ones it holds); returns their ids.
   */
  renewLeases(runnerId: string, leaseMs: number, jobIds?: readonly string[]): Promise<string[]>;
  /** Jobs, oldest first, filtered. */
  list(query?: ListJobsQuery): Promise<JobRecord[]>;
  /** How many jobs wait for a runner, and since when the oldest has (null when none waits). */
  queue(): Promise<JobQueue>;
  /** Assigned or running jobs whose lease ended before `now` (default: the store clock's now). */
  expired(now?: string): Promise<JobRecord[]>;
}

/** What runners reported on jobs whose engine runs on another replica. */
export interface JobReportsRepo {
  /** Stores a runner's report for the job's engine; false when the same report is stored already. */
  add(input: NewJobReport): Promise<boolean>;
  /** Reports in arrival order, of these jobs or of the runs `replicaId` carries. */
  list(query: {
    jobIds?: readonly string[];
    replicaId?: string;
    /** At most this many (default and cap 10,000): reports carry whole batches. */
    limit?: number;
  }): Promise<JobReport[]>;
  /** Which of these jobs have stored reports (of `kind`, when given); reads no report body. */
  jobsWithReports(jobIds: readonly string[], kind?: JobReportKind): Promise<string[]>;
  /** Deletes these reports (their engine has taken them). */
  delete(ids: readonly number[]): Promise<void>;
  /** Deletes the reports of ended runs; returns how many. */
  prune(): Promise<number>;
}

/** The server replicas on one database, and which of them carries each run. */
export interface FleetRepo {
  /**
   * Inserts or refreshes a replica's row, `seen_at` now. With `ifPresent` only refreshes, and
   * answers false when the row is gone (the fleet presumed the replica dead).
   */
  heartbeat(input: ReplicaInput, opts?: { ifPresent?: boolean }): Promise<boolean>;
  /** Every replica row, live or presumed dead. */
  listReplicas(): Promise<ReplicaRecord[]>;
  /** Forgets replicas not seen since `seenBefore` (or all but `except`); their runners go offline. */
  removeReplicas(opts: {
    seenBefore?: string;
    seenAt?: string;
    except?: string;
    only?: string;
  }): Promise<string[]>;
  /**
   * Takes the queued and running runs no live replica carries (and with `own`, those named for
   * `replicaId` already) for `replicaId`; returns them oldest first. Two adopters never get the same run.
   */
  adoptRuns(replicaId: string, opts?: { own?: boolean }): Promise<RunRecord[]>;
  /** The replica carrying a run (null: none), or undefined for an unknown run. */
  runReplica(runId: string): Promise<string | null | undefined>;
  /** Records a cancel request for a queued or running run; false when it has ended or is unknown. */
  requestRunCancel(runId: string): Promise<boolean>;
  /** True when someone asked to cancel the run. */
  cancelRequested(runId: string): Promise<boolean>;
  /** Queued and running runs `replicaId` carries that someone asked to cancel (a lost `cancel-run`). */
  cancelRequestedRuns(replicaId: string): Promise<string[]>;
}

/**
 * Everything the server keeps, one repository per record type; a consumer takes the repositories
 * it uses. One implementation over Kysely (`kysely-store.ts`) serves every backend. Methods that
 * look a record up return `undefined` when it does not exist; unexpected states throw
 * `RunyardError` (`CONFLICT` for a taken id, `NOT_FOUND` for events or jobs of a missing run).
 */
export interface Store {
  runs: RunsRepo;
  events: RunEventsRepo;
  jobs: JobsRepo;
  jobReports: JobReportsRepo;
  runners: RunnersRepo;
  tokens: TokensRepo;
  users: UsersRepo;
  sessions: SessionsRepo;
  serverKeys: ServerKeysRepo;
  secrets: SecretsRepo;
  bots: BotsRepo;
  artifacts: ArtifactsRepo;
  audit: AuditRepo;
  fleet: FleetRepo;
  /** Closes the database; the store is unusable afterwards. Calling it twice is harmless. */
  close(): Promise<void>;
}
