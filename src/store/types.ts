import type { BotMode, BotState } from "../core/bot-states.js";
import type {
  ErrorInfo,
  RunEvent,
  RunKind,
  RunStatus,
  StepSummary,
  UnnumberedEvent,
} from "../core/events.js";
import type { JobKind } from "../core/jobs/index.js";
import type { RunnerInfo } from "../core/protocol.js";

/*
 * The store's public contract (DESIGN.md section 9). The server talks only to `Store`; the
 * SQLite file, the in-memory database and (later) PostgreSQL are backends behind it.
 * Field names are snake_case, as in the event spine and the HTTP API, so records pass through
 * unchanged. Every timestamp is ISO-8601 text in UTC (`Date#toISOString()`); timestamps given
 * to the store are normalised to that form, which keeps them sortable as text.
 */

/** One execution of one piece of work (a workflow, an agent task, a bot), as stored. */
export interface RunRecord {
  /** Unique; runyard's own ids (`newRunId()`) sort by creation time, caller-given ids need not. */
  id: string;
  kind: RunKind;
  /** The workflow, task or bot name people read. */
  name: string;
  status: RunStatus;
  /** Owning tenant; null for a run outside any tenant. Tenants see only their own runs. */
  tenant_id: string | null;
  /** Id of the token that submitted the run (not the secret), or null. */
  created_by: string | null;
  /** What was submitted, stored as JSON: the workflow text, vars, options. */
  spec: unknown;
  /** Variables exported so far (final ones once the run has finished). */
  vars: Record<string, string>;
  /** One summary per step and host; empty until the engine reports them. */
  steps: StepSummary[];
  /** Why the run failed or was interrupted; null while it has not. */
  error: ErrorInfo | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** Highest event seq stored for the run; 0 before the first event. */
  last_seq: number;
  /** The last failure of the status notifier (seed 002 `last_notify_error`); it never changes status. */
  last_notify_error: string | null;
}

/** What `createRun` needs; everything else starts empty. */
export interface NewRun {
  /** Defaults to a fresh `newRunId()`. A caller-given id that exists already is a CONFLICT. */
  id?: string;
  kind: RunKind;
  name: string;
  /** Defaults to `queued`. */
  status?: RunStatus;
  tenant_id?: string | null;
  created_by?: string | null;
  spec?: unknown;
  vars?: Record<string, string>;
  /** Defaults to the store clock's now. */
  created_at?: string;
  /** The replica whose engine carries the run (see `Store.adoptRuns`); not part of the record. */
  replica_id?: string;
}

/** The fields of a run that change while it runs; absent keys are left as they are. */
export type RunPatch = Partial<
  Pick<
    RunRecord,
    "name" | "status" | "started_at" | "finished_at" | "vars" | "steps" | "error" | "last_notify_error"
  >
>;

/** A compare-and-set guard: the update applies only while the record is in one of these states. */
export interface IfStatus<S extends string> {
  ifStatus?: readonly S[];
}

/** Filters and paging for `listRuns`; runs come newest first (`created_at` desc, then `id` desc). */
export interface ListRunsQuery {
  status?: RunStatus | readonly RunStatus[];
  kind?: RunKind;
  /** A tenant's runs; `null` for runs outside any tenant; absent for all runs. */
  tenantId?: string | null;
  /** Page size: default 50, at most 500. */
  limit?: number;
  /** Cursor: the `next` of the previous page (a run id); the page starts after that run. */
  before?: string;
}

/** One page of runs; `next` is present when there are more, and is the `before` of the next page. */
export interface RunPage {
  runs: RunRecord[];
  next?: string;
}

/** How many runs of one kind are in one status (`countRuns`). */
export interface RunCount {
  kind: RunKind;
  status: RunStatus;
  count: number;
}

/** Whose queued and running runs `countActiveRuns` counts (never bot runs: bots have their own quota); absent keys do not filter. */
export interface ActiveRunsQuery {
  /** One tenant's runs; `null` for runs outside any tenant. */
  tenantId?: string | null;
  /** Runs whose `created_by` is one of these (a user's id and their personal tokens' ids). */
  createdBy?: readonly string[];
}

/** How many runs wait and how many run (quotas count these, from the store, on every replica). */
export interface ActiveRunCount {
  queued: number;
  running: number;
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
   * The replica carrying the run, as the writer believes: events are stored only while it is
   * (`runs.replica_id`), else nothing is written and REPLICA_FENCED is thrown. A replica the
   * fleet presumed dead can thus never add events to a run another replica adopted.
   */
  carrier?: string;
}

/** How much of a run's output the store keeps. */
export interface RunLogLimit {
  /** Output bytes (`step.output` data, UTF-8) stored per run at most; 0 means no cap. */
  maxBytes: number;
  /** Output bytes the run stored before its cap was recorded (a run stored by an older runyard). */
  storedBytes: number;
  /**
   * Keep the newest output instead of the first (a bot's run, which lasts its whole life and
   * whose latest lines are what `bot logs` is for): past the cap the oldest output is deleted.
   */
  rolling?: boolean;
}

/** Options of `appendRunEvents`. */
export interface AppendRunEventsOptions extends AppendEventsOptions {
  /**
   * The run's log cap, recorded on the run by the first append that gives it (the replica
   * carrying the run gives it); later ones ignore it, and any writer honours the recorded one.
   */
  logLimit?: RunLogLimit;
}

/** What `appendRunEvents` did. */
export interface AppendedRunEvents {
  /** True when `job.seq` was not above the job's stored `last_event_seq`: nothing was written. */
  duplicate: boolean;
  /**
   * The events stored, numbered, in seq order: the batch's, less output past the log cap, plus
   * the cap's notices where a step whose output was cut finished.
   */
  events: RunEvent[];
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
export interface QueuedJobs {
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

export type RunnerStatus = "online" | "offline";

/** How a runner keeps each run from the others and from itself (see `RunnerInfo.isolation`). */
export type RunnerIsolation = RunnerInfo["isolation"];

/** A runner daemon as it advertised itself (seed 000 `GET /api/runners`). */
export interface RunnerRecord {
  id: string;
  group: string;
  labels: string[];
  /** What the runner takes on (seed 000 `ADOS_MODE`: chat, issue, all). */
  mode: string;
  /** How many jobs it runs at once. */
  capacity: number;
  cpus: number | null;
  /** As advertised, e.g. `8g`. */
  memory: string | null;
  hostname: string;
  tenant_id: string | null;
  status: RunnerStatus;
  /** When the current (or last) connection was made. */
  connected_at: string | null;
  last_heartbeat_at: string | null;
  /** The runyard version the runner runs. */
  version: string | null;
  /** The runner token this id belongs to (see `RunnerInput.token_id`). */
  token_id: string | null;
  /** The server replica it is connected to (or was last); null before its first hello. */
  replica_id: string | null;
  /** The operator marked it shared (`runyard runner --shared`): it may take any tenant's runs. */
  shared: boolean;
  isolation: RunnerIsolation;
}

/**
 * What `upsertRunner` takes. Advertised fields replace the stored ones; `status`,
 * `connected_at` and `last_heartbeat_at` are changed only when given (a new runner starts offline).
 */
export type RunnerInput = Pick<RunnerRecord, "id" | "group" | "labels" | "mode" | "capacity" | "hostname"> &
  Partial<
    Pick<
      RunnerRecord,
      | "cpus"
      | "memory"
      | "tenant_id"
      | "version"
      | "status"
      | "connected_at"
      | "last_heartbeat_at"
      | "replica_id"
      | "shared"
      | "isolation"
    >
  > & {
    /**
     * The runner token saying hello. The id is bound to the first token that registers it; while
     * that token exists, an upsert with another token changes nothing and returns undefined.
     */
    token_id?: string;
  };

export type TokenKind = "admin" | "user" | "runner";

/** An API token. The secret itself is never stored, only its SHA-256 hash. */
export interface TokenRecord {
  id: string;
  kind: TokenKind;
  /** What the token is for, as its creator named it. */
  name: string;
  /** Runner tokens: the group a runner holding it joins. Null otherwise. */
  group: string | null;
  tenant_id: string | null;
  created_at: string;
  /** Updated by `findToken`, at most once a minute. */
  last_used_at: string | null;
  /** A personal API token: the user who owns it and whose role and tenant it acts with. */
  user_id: string | null;
  /** When it stops working (`findToken` no longer finds it); null: never. */
  expires_at: string | null;
}

/** Filters for `listTokens`; tokens come oldest first. */
export interface ListTokensQuery {
  kind?: TokenKind;
  /** Only the tokens this user owns. */
  userId?: string;
  /** Only the tokens of this tenant (`null`: outside any tenant). */
  tenantId?: string | null;
}

export type UserRole = "admin" | "member";

/** Someone who logs in. The password hash is never part of the record (`findUserByName` has it). */
export interface UserRecord {
  id: string;
  /** Unique, as typed at `user add`; logins match it exactly. */
  username: string;
  /** Null only for platform admins (role admin outside any tenant). */
  tenant_id: string | null;
  role: UserRole;
  created_at: string;
  password_changed_at: string;
  /** Sessions issued before this instant are refused; `setUserPassword` moves it to now. */
  sessions_valid_after: string;
}

/** A user with the argon2id hash to check a password against. */
export interface UserWithHash extends UserRecord {
  password_hash: string;
}

/** What `createUser` needs; the caller hashes the password. */
export interface NewUser {
  username: string;
  tenant_id?: string | null;
  role: UserRole;
  password_hash: string;
}

/** What `createToken` needs. */
export interface NewToken {
  kind: TokenKind;
  name: string;
  group?: string | null;
  tenant_id?: string | null;
  /** The user who owns a personal token. */
  user_id?: string | null;
  /** When it stops working; absent or null: never. */
  expires_at?: string | null;
  /** A secret to store (e.g. RUNYARD_ADMIN_TOKEN); defaults to a fresh `newSecret("ryt")`. */
  secret?: string;
}

/** A new token and its secret; the only time the secret is seen. */
export interface CreatedToken {
  record: TokenRecord;
  secret: string;
}

/** A stored secret as anyone may see it: its name and when it changed, never its value. */
export interface SecretInfo {
  name: string;
  /** The tenant it belongs to; null outside any tenant. */
  tenant_id: string | null;
  created_at: string;
  updated_at: string;
  /** The id (not the secret) of the token that set it last. */
  updated_by: string | null;
}

/** What `setSecret` stores: the value is sealed with the store's key before it is written. */
export interface NewSecret {
  tenant_id: string | null;
  name: string;
  value: string;
  updated_by?: string | null;
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

/**
 * Everything the server keeps: runs, their event logs, jobs for runners, runners and tokens.
 * One implementation over Kysely (`kysely-store.ts`) serves every backend. Methods that look a
 * record up return `undefined` when it does not exist; unexpected states throw `RunyardError`
 * (`CONFLICT` for a taken id, `NOT_FOUND` for events or jobs of a missing run).
 */
/** What the audit log records: logins, token, user and secret changes, cancels. */
export type AuditAction =
  | "login"
  | "logout"
  | "token.create"
  | "token.revoke"
  | "user.add"
  | "user.remove"
  | "user.passwd"
  | "secret.set"
  | "secret.rm"
  | "run.cancel"
  | "bot.start"
  | "bot.stop"
  | "bot.rm";

export type AuditOutcome = "ok" | "denied" | "failed";

/** Who did it: the principal's kind and ids (null when unknown, e.g. a failed login). */
export interface AuditActor {
  kind: string | null;
  user_id: string | null;
  token_id: string | null;
  username: string | null;
}

/** One entry of the audit log; `details` never holds a password, token secret or secret value. */
export interface AuditEvent {
  id: string;
  at: string;
  actor: AuditActor;
  /** The tenant the action was in (the target's, else the actor's); null: outside any tenant. */
  tenant_id: string | null;
  /** The client address the request came from. */
  address: string | null;
  action: AuditAction;
  /** What it was done to: a username, token id, secret name or run id. */
  target: string | null;
  outcome: AuditOutcome;
  details: Record<string, unknown>;
}

export type NewAuditEvent = Omit<AuditEvent, "id" | "at"> & { at?: string };

/** Filters and paging for `listAudit`; entries come newest first (`at` desc, then `id` desc). */
export interface ListAuditQuery {
  action?: AuditAction;
  /** One tenant's entries; `null` for those outside any tenant; absent for all. */
  tenantId?: string | null;
  /** Only entries at or after this instant. */
  since?: string;
  /** Page size: default 50, at most 500. */
  limit?: number;
  /** Cursor: the `next` of the previous page (an entry id). */
  before?: string;
}

export interface AuditPage {
  events: AuditEvent[];
  next?: string;
}

/** A stored artifact of a run, without its content (`listArtifacts`). */
export interface ArtifactInfo {
  /** Unique within the run: an upload under a name the run has replaces it. */
  name: string;
  /** Bytes of the content as UTF-8. */
  size: number;
  /** As uploaded, e.g. `text/x-diff`, `application/x-ndjson`. */
  content_type: string;
  /** Hex SHA-256 of the content's UTF-8 bytes. */
  sha256: string;
  /** The job whose runner uploaded it; null when the server stored it itself. */
  job_id: string | null;
  /** When this content was stored (a replaced artifact gets the time of the replacement). */
  created_at: string;
}

/** An artifact with its content (`getArtifact`). */
export interface Artifact extends ArtifactInfo {
  /** UTF-8 text: agent artifacts are diffs, JSONL transcripts, test output and logs. */
  content: string;
}

/** What `putArtifact` takes; size, hash and time are the store's. */
export interface NewArtifact {
  run_id: string;
  name: string;
  job_id?: string | null;
  content_type: string;
  content: string;
}

/** A bot as stored (`spec` and `last_logs` opened: the store seals them at rest). */
export interface BotRecord {
  id: string;
  tenant_id: string | null;
  /** The user id, or the token id, that made the bot; the per-user quota counts by it. */
  owner: string;
  /** Unique per tenant and owner among bots that are not `removed`. */
  name: string;
  mode: BotMode;
  /** What the bot is made of (files, env with secrets, registry credentials), as JSON. */
  spec: unknown;
  state: BotState;
  runner_id: string | null;
  container_id: string | null;
  image: string | null;
  /** How many times its container was restarted. */
  restarts: number;
  /** Docker's restart policy, e.g. `no`, `on-failure:3`. */
  restart_policy: string;
  exit_code: number | null;
  oom_killed: boolean;
  /** The previous container's last lines of output (for `logs --previous`). */
  last_logs: string | null;
  error: ErrorInfo | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** When its lifetime ends: a bot still running then ends `timeout`. */
  expires_at: string;
  /** The run of its current (or last) life. */
  run_id: string | null;
  /** What its container used at `stats_at` (the runner's last heartbeat), null when unknown. */
  memory_bytes: number | null;
  cpu_percent: number | null;
  stats_at: string | null;
}

/** What `createBot` needs; the rest starts empty. */
export interface NewBot {
  /** Defaults to a fresh `newId("bot")`. */
  id?: string;
  tenant_id?: string | null;
  owner: string;
  name: string;
  mode: BotMode;
  spec: unknown;
  /** Defaults to `building`. */
  state?: BotState;
  image?: string | null;
  /** Defaults to `no`. */
  restart_policy?: string;
  expires_at: string;
}

/** The per-owner cap `createBot` checks in the same transaction as the insert. */
export interface BotQuota {
  /** Live bots (building, pulling, running) the owner may have; the new one is refused past it. */
  maxLive: number;
  /** Named in the QUOTA_EXCEEDED message and hint. */
  setting: string;
}

/** The fields of a bot that change over its life; absent keys are left as they are. */
export type BotPatch = Partial<
  Pick<
    BotRecord,
    | "state"
    | "runner_id"
    | "container_id"
    | "image"
    | "restarts"
    | "restart_policy"
    | "exit_code"
    | "oom_killed"
    | "last_logs"
    | "error"
    | "started_at"
    | "finished_at"
    | "expires_at"
    | "run_id"
    | "memory_bytes"
    | "cpu_percent"
    | "stats_at"
  >
>;

/** Filters of `listBots`; absent keys do not filter. */
export interface ListBotsQuery {
  /** One tenant's bots; `null` for bots outside any tenant. */
  tenantId?: string | null;
  owner?: string;
  states?: readonly BotState[];
}

/** A compare-and-set guard on a bot's state (like `IfStatus`). */
export interface IfBotState {
  ifState?: readonly BotState[];
}

export interface Store {
  /** Stores a new run and returns it. */
  createRun(input: NewRun): Promise<RunRecord>;
  /** Changes a run; undefined when it does not exist or its status is not in `ifStatus`. */
  updateRun(id: string, patch: RunPatch, opts?: IfStatus<RunStatus>): Promise<RunRecord | undefined>;
  /** One run, or undefined (seed 002 `GET /run-status` answers 404 then). */
  getRun(id: string): Promise<RunRecord | undefined>;
  /** One page of runs, newest first, filtered. An unknown `before` cursor is INVALID_INPUT. */
  listRuns(query?: ListRunsQuery): Promise<RunPage>;
  /** Every run in one of these statuses, oldest first; for reconciliation at start-up. */
  listRunsByStatus(statuses: readonly RunStatus[]): Promise<RunRecord[]>;
  /**
   * Marks `running` runs (all, or those among `ids`) `interrupted` with `reason` as their error
   * and `finished_at` now, in one statement. Queued runs are left queued. Returns the ids changed.
   */
  markInterruptedRunning(reason: ErrorInfo, opts?: { ids?: readonly string[] }): Promise<string[]>;
  /** How many runs there are of each kind and status; pairs with no run are left out. */
  countRuns(): Promise<RunCount[]>;

  /**
   * Stores a batch of events in one transaction and raises `runs.last_seq`. With `job`, the
   * job's `last_event_seq` is raised to `job.seq` in the same transaction, and a batch whose
   * `job.seq` is not above it is a duplicate and writes nothing: a re-sent batch is stored once.
   * An event whose `(run_id, seq)` is stored already is skipped, never stored twice.
   * Events must be valid `RunEvent`s (the server parses what runners send before this). For
   * events numbered elsewhere (a copy, a test); a server run's events go through
   * `appendRunEvents`, which numbers them and keeps the run's log cap.
   */
  appendEvents(events: readonly RunEvent[], opts?: AppendEventsOptions): Promise<AppendResult>;
  /**
   * Appends a batch of one run's events from any replica, concurrently with any other: the store
   * gives the seqs (the run's next ones, dense, in the batch's order) and applies the run's log
   * cap, all in one transaction that holds the run's row, so concurrent writers take turns and
   * the run's log has no gap and no seq twice. With `job`, a batch whose `job.seq` is not above
   * the job's `last_event_seq` is a duplicate and writes nothing (a batch sent to two replicas
   * is stored once). NOT_FOUND for an unknown run or job; REPLICA_FENCED as for `appendEvents`.
   */
  appendRunEvents(
    runId: string,
    events: readonly UnnumberedEvent[],
    opts?: AppendRunEventsOptions,
  ): Promise<AppendedRunEvents>;
  /** A run's events ascending by seq, parsed with the `RunEvent` schema. */
  listEvents(runId: string, query?: ListEventsQuery): Promise<RunEvent[]>;
  /**
   * Deletes a run's oldest `step.output` events, at least `bytes` of their output text (whole
   * events); answers the output bytes deleted. A bot's rolling log keeps its newest lines so.
   */
  dropOldestOutput(runId: string, bytes: number): Promise<number>;
  /** The highest stored event seq of a run (0 before any), or undefined for an unknown run. */
  lastSeq(runId: string): Promise<number | undefined>;

  /** Queues a job for a run and returns it. */
  createJob(input: NewJob): Promise<JobRecord>;
  getJob(id: string): Promise<JobRecord | undefined>;
  /**
   * Atomically takes the oldest queued job this runner may run (group, labels and tenant match),
   * marks it `assigned` to the runner with a lease of `leaseMs`, and returns it; undefined when
   * none is waiting. Concurrent claimers never get the same job.
   */
  claimJob(runner: ClaimingRunner, leaseMs: number): Promise<JobRecord | undefined>;
  /**
   * A job assigned to `runnerId` that the runner refused unstarted goes back to the queue with
   * `refusals` as its whole list and no claim before `notBefore`; undefined when it is no longer
   * assigned to that runner.
   */
  refuseJob(
    id: string,
    runnerId: string,
    refusals: readonly JobRefusal[],
    notBefore: Date,
  ): Promise<JobRecord | undefined>;
  /*
   * The transitions of a job, one verb each (the server's JobQueue is their only caller). Each
   * answers the changed job, or undefined when the job was not in the state the verb leaves.
   */
  /** assigned -> running: the runner holding it took it up. */
  acceptJob(id: string, runnerId: string): Promise<JobRecord | undefined>;
  /** assigned | running -> done with the result its runner reported. */
  completeJob(id: string, runnerId: string, result: unknown): Promise<JobRecord | undefined>;
  /** assigned -> queued: its runner gave it back unstarted (draining, stopping). */
  returnJob(id: string, runnerId: string): Promise<JobRecord | undefined>;
  /** assigned | running -> lost: its runner is gone or no longer holds it. */
  loseJob(id: string): Promise<JobRecord | undefined>;
  /** assigned -> done with `result`: refused once too often, it is given up. */
  giveUpJob(id: string, runnerId: string, result: unknown): Promise<JobRecord | undefined>;
  /** queued -> done with `result`: canceled before any runner claimed it. */
  cancelQueuedJob(id: string, result: unknown): Promise<JobRecord | undefined>;
  /** queued | assigned | running -> done with `result`: canceled, its runner silent or gone. */
  cancelJob(id: string, result: unknown): Promise<JobRecord | undefined>;
  /**
   * Extends the lease of every assigned or running job of a runner (with `jobIds`, of those
   * only: the ones it holds); returns their ids.
   */
  renewLeases(runnerId: string, leaseMs: number, jobIds?: readonly string[]): Promise<string[]>;
  /** Sets the lease of every assigned or running job of `runIds` to `until`; returns their ids. */
  holdLeases(runIds: readonly string[], until: Date): Promise<string[]>;
  /** Jobs, oldest first, filtered. */
  listJobs(query?: ListJobsQuery): Promise<JobRecord[]>;
  /** How many jobs wait for a runner, and since when the oldest has (null when none waits). */
  jobQueue(): Promise<QueuedJobs>;
  /** Assigned or running jobs whose lease ended before `now` (default: the store clock's now). */
  expiredJobs(now?: string): Promise<JobRecord[]>;

  /**
   * Stores a runner's advertised info (see `RunnerInput`) and returns the record; undefined when
   * the id belongs to another runner token that still exists.
   */
  upsertRunner(input: RunnerInput): Promise<RunnerRecord | undefined>;
  /**
   * Online sets `connected_at` and `last_heartbeat_at` to `at`; offline keeps them. With
   * `replicaId`, only while the runner is recorded as connected to that replica (it may have
   * moved to another one since).
   */
  setRunnerStatus(
    id: string,
    status: RunnerStatus,
    at: string,
    opts?: { replicaId?: string },
  ): Promise<RunnerRecord | undefined>;
  /** Records a heartbeat; false when the runner is unknown. */
  touchRunner(id: string, at: string): Promise<boolean>;
  /** Runners by id; `tenantId` as in `ListRunsQuery`. */
  listRunners(query?: { tenantId?: string | null; status?: RunnerStatus }): Promise<RunnerRecord[]>;
  getRunner(id: string): Promise<RunnerRecord | undefined>;

  /**
   * Stores an artifact of a run, sealed, replacing the one of the same name (an agent turn may
   * rewrite its transcript). NOT_FOUND for an unknown run; INVALID_INPUT for content that is not
   * well-formed Unicode text (a lone surrogate cannot be stored as UTF-8).
   */
  putArtifact(input: NewArtifact): Promise<ArtifactInfo>;
  /** A run's artifacts by name, without content; empty for an unknown run. */
  listArtifacts(runId: string): Promise<ArtifactInfo[]>;
  /** One artifact with its content, or undefined. */
  getArtifact(runId: string, name: string): Promise<Artifact | undefined>;

  /** Creates a token and returns its secret; a secret already in use is a CONFLICT. */
  createToken(input: NewToken): Promise<CreatedToken>;
  /** The token with this secret, looked up by its hash (no secret comparison to time), or undefined. */
  findToken(secret: string): Promise<TokenRecord | undefined>;
  /** The token with this id (expired or not), or undefined. */
  getToken(id: string): Promise<TokenRecord | undefined>;
  /** Tokens of a kind (or filtered), oldest first (no secrets: they are not stored). */
  listTokens(query?: TokenKind | ListTokensQuery): Promise<TokenRecord[]>;
  /** Deletes a token; false when there was none. */
  revokeToken(id: string): Promise<boolean>;
  countTokens(kind?: TokenKind): Promise<number>;

  /** Stores a secret of a tenant, or replaces its value; `created` says which. */
  setSecret(input: NewSecret): Promise<{ secret: SecretInfo; created: boolean }>;
  /** A tenant's secrets by name, without values (`null`: those outside any tenant). */
  listSecrets(tenantId: string | null): Promise<SecretInfo[]>;
  /**
   * The values of those of `names` the tenant has stored; names it has not are left out. For the
   * server's own use (starting a run): no API answer ever holds a value.
   */
  secretValues(tenantId: string | null, names: readonly string[]): Promise<Record<string, string>>;
  /** Deletes a tenant's secret; false when there was none. */
  removeSecret(tenantId: string | null, name: string): Promise<boolean>;
  /** Stores a user; a username in use is a CONFLICT. */
  createUser(input: NewUser): Promise<UserRecord>;
  getUser(id: string): Promise<UserRecord | undefined>;
  /** The user with this exact username, with its password hash (for login), or undefined. */
  findUserByName(username: string): Promise<UserWithHash | undefined>;
  /** Users by username; `tenantId` as in `ListRunsQuery`. */
  listUsers(query?: { tenantId?: string | null }): Promise<UserRecord[]>;
  /**
   * Replaces a user's password hash and moves `password_changed_at` and `sessions_valid_after`
   * to now, which ends every session issued before; undefined for an unknown user.
   */
  setUserPassword(id: string, passwordHash: string): Promise<UserRecord | undefined>;
  /** Deletes a user with its personal tokens and revoked-session rows; false when there was none. */
  removeUser(id: string): Promise<boolean>;
  /** Records a logged-out session until it would have expired anyway; prunes the expired ones. */
  revokeSession(sessionId: string, userId: string, expiresAt: string): Promise<void>;
  sessionRevoked(sessionId: string): Promise<boolean>;
  /**
   * The server key of this name, generated (32 random bytes, base64url) by the first replica that
   * asks and stored sealed with the store's cipher; every replica gets the same one.
   */
  serverKey(name: string): Promise<string>;

  /**
   * Inserts or refreshes a replica's row, `seen_at` now. With `ifPresent` only refreshes, and
   * answers false when the row is gone (the fleet presumed the replica dead).
   */
  heartbeatReplica(input: ReplicaInput, opts?: { ifPresent?: boolean }): Promise<boolean>;
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
  cancelRequested(runId: string): Promise<boolean>;
  /** Queued and running runs `replicaId` carries that someone asked to cancel (a lost `cancel-run`). */
  cancelRequestedRuns(replicaId: string): Promise<string[]>;

  /** Stores a runner's report for the job's engine; false when the same report is stored already. */
  addJobReport(input: NewJobReport): Promise<boolean>;
  /** Reports in arrival order, of these jobs or of the runs `replicaId` carries. */
  listJobReports(query: {
    jobIds?: readonly string[];
    replicaId?: string;
    /** At most this many (default and cap 10,000): reports carry whole batches. */
    limit?: number;
  }): Promise<JobReport[]>;
  /** Which of these jobs have stored reports (of `kind`, when given); reads no report body. */
  jobsWithReports(jobIds: readonly string[], kind?: JobReportKind): Promise<string[]>;
  deleteJobReports(ids: readonly number[]): Promise<void>;
  /** Deletes the reports of ended runs; returns how many. */
  pruneJobReports(): Promise<number>;

  /** Queued and running runs of a tenant and/or of some submitters (quotas). */
  countActiveRuns(query?: ActiveRunsQuery): Promise<ActiveRunCount>;

  /** Adds an entry to the audit log and returns it. */
  appendAudit(input: NewAuditEvent): Promise<AuditEvent>;
  /**
   * Writes an entry that counts repeats (refused logins of one client in one minute): the first
   * call with `id` inserts it, each later one replaces its `details` (the count) in place.
   */
  tallyAudit(id: string, input: NewAuditEvent): Promise<void>;
  /** Deletes the entries older than `before` (`audit.retention_days`); returns how many. */
  pruneAudit(before: string): Promise<number>;
  /** Audit entries, newest first, filtered and paged. */
  listAudit(query?: ListAuditQuery): Promise<AuditPage>;

  /** Stores a new bot; a name the owner has for a bot not `removed` is a CONFLICT. */
  /**
   * Stores a new bot. With `quota`, the owner's live bots are counted and the bot inserted in
   * one transaction under a per-owner lock: concurrent starts never pass the cap together.
   */
  createBot(input: NewBot, quota?: BotQuota): Promise<BotRecord>;
  getBot(id: string): Promise<BotRecord | undefined>;
  /** The owner's bot of this name that is not `removed`, or undefined. */
  findBot(tenantId: string | null, owner: string, name: string): Promise<BotRecord | undefined>;
  /** Bots oldest first, filtered. */
  listBots(query?: ListBotsQuery): Promise<BotRecord[]>;
  /** Changes a bot; undefined when it does not exist or its state is not in `ifState`. */
  updateBot(id: string, patch: BotPatch, opts?: IfBotState): Promise<BotRecord | undefined>;
  /** The owner's bots being built, pulled or running (what the per-user quota counts). */
  countLiveBots(tenantId: string | null, owner: string): Promise<number>;
  /** Running bots whose `expires_at` is not after `now` (default: the store clock's now). */
  expiredBots(now?: string): Promise<BotRecord[]>;

  /** Closes the database; the store is unusable afterwards. Calling it twice is harmless. */
  close(): Promise<void>;
}
