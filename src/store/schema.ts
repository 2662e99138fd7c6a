import type { ColumnType } from "kysely";
import type { RunKind, RunStatus } from "../core/events.js";
import type { JobKind } from "../core/jobs/index.js";
import type { RunTrigger } from "../core/run-trigger.js";
import type { JobStatus } from "./job-records.js";
import type { RunnerIsolation, RunnerStatus } from "./runners.js";
import type {
  BotAlertsTable,
  BotHookHitsTable,
  BotSamplesTable,
  BotsTable,
  BotVersionsTable,
  TenantBotAlertsTable,
} from "./schema-bots.js";
import type { TokenKind } from "./tokens.js";
import type { UserRole } from "./users.js";

/* Kysely table types, as the migrations create them, in the portable columns of columns.ts. */

/** A bigint column: node-postgres returns int8 as a string, SQLite as a number; read it with `int`. */
type Int8 = ColumnType<number | string, number | undefined, number>;

export interface RunsTable {
  /** Unique; runyard's own ids (`newRunId()`) sort by creation time, caller-given ids need not. */
  id: string;
  kind: RunKind;
  /** The workflow, task or bot name people read. */
  name: string;
  status: RunStatus;
  /** Owning tenant; null for a run outside any tenant. Tenants see only their own runs. */
  tenant_id: string | null;
  /** Id of the token (or user) that submitted or triggered the run (not the secret), or null. */
  created_by: string | null;
  spec: string;
  vars: string;
  steps: string;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  last_seq: Int8;
  /** The last failure of the status notifier; it never changes the run's status. */
  last_notify_error: string | null;
  /** The replica whose engine carries the run (several servers on one database); null when none. */
  replica_id: string | null;
  /** When someone asked to cancel the run; the replica carrying it (or adopting it) stops it. */
  cancel_requested_at: string | null;
  /** The run's stored log cap in output bytes, 0 for none; null until recorded (`appendRunEvents`). */
  log_max_bytes: ColumnType<number | string | null, number | null | undefined, number | null>;
  /** 1: past the cap the oldest output is deleted (a bot's rolling log); 0: newer output is cut. */
  log_rolling: ColumnType<number, number | undefined, number>;
  /** Output bytes (`step.output` data, UTF-8) the run has stored. */
  log_bytes: Int8;
  /** Null while output is stored; past the cap, JSON `[{step, host, bytes}]` cut and not yet said. */
  log_cut: string | null;
  /** The concurrency group the run takes turns in (expanded at submit); null: none. */
  concurrency_group: ColumnType<string | null, string | null | undefined, string | null>;
  /** What started the run (`RunTrigger`); runs stored before triggers were recorded read `api`. */
  trigger: ColumnType<RunTrigger, RunTrigger | undefined, RunTrigger>;
  /** What is behind the trigger: the schedule id, the hook name, the run re-run; null for none. */
  trigger_ref: string | null;
  /** The saved workflow the run ran, and its version; null for a workflow sent as text. */
  saved_workflow: string | null;
  saved_version: number | null;
  /**
   * The user behind `created_by` as it was at submit (null: a token of no user): the run stays
   * theirs (spend, quota, approvals) after that token is revoked.
   */
  created_by_user: ColumnType<string | null, string | null | undefined, string | null>;
  /**
   * Who wrote what the run runs: a saved version's saver, a text's submitter, a re-run's first
   * author; `created_by` is who triggered it. The run has the lesser rights of the two.
   */
  authored_by: ColumnType<string | null, string | null | undefined, string | null>;
  /** 1: a failed run whose rollbacks all ran and succeeded. */
  rolled_back: ColumnType<number, number | undefined, number>;
  /** The rollback step that failed (`rollback: deploy`); null: none did. */
  rollback_failed: ColumnType<string | null, string | null | undefined, string | null>;
  /** The run a retry or a one-step run (`runs retry`, `runs run-step`) carries on from, keeping its finished steps. */
  retry_of: ColumnType<string | null, string | null | undefined, string | null>;
  /** The step a retry ran from, or the one step a one-step run ran. */
  retry_from: ColumnType<string | null, string | null | undefined, string | null>;
  /** The run whose `workflow.call` step started this one, and that step; null for other runs. */
  parent_run_id: ColumnType<string | null, string | null | undefined, string | null>;
  parent_step: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface RunEventsTable {
  run_id: string;
  seq: Int8;
  type: string;
  ts: string;
  data: string;
}

export interface JobsTable {
  id: string;
  run_id: string;
  type: JobKind;
  status: JobStatus;
  req_group: string | null;
  req_tenant_id: string | null;
  /** The required labels as a JSON array, for reading back; `job_labels` is what claims match on. */
  req_labels: string;
  payload: string;
  result: string | null;
  runner_id: string | null;
  lease_expires_at: string | null;
  last_event_seq: Int8;
  /** Each refusal of the job by a runner, as a JSON array of `JobRefusal`; null before the first. */
  refusals: string | null;
  not_before: string | null;
  created_at: string;
  updated_at: string;
}

/** One row per required label of a job, so the claim query matches labels in plain SQL. */
export interface JobLabelsTable {
  job_id: string;
  label: string;
}

export interface RunnersTable {
  id: string;
  group_name: string;
  /** JSON: the labels, each once. */
  labels: string;
  /** What the runner takes on (the ADOS runner's `ADOS_MODE`: chat, issue, all). */
  mode: string;
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
  version: string | null;
  /** The runner token this id belongs to (see `RunnerInput.token_id`); null until a runner says hello with it. */
  token_id: string | null;
  /** The server replica it is connected to (or was last); null before its first hello. */
  replica_id: string | null;
  /** 1: the operator marked it shared (`runyard runner --shared`); 0: not. */
  shared: number;
  isolation: RunnerIsolation;
}

/** A server process on the database; several replicas share one PostgreSQL database. */
export interface ReplicasTable {
  /** Stable per home folder (`<home>/replica-id`), else new at each start. */
  id: string;
  hostname: string;
  /** Where the replica's API listens, as it says itself. */
  url: string | null;
  version: string;
  started_at: string;
  /** Its last heartbeat; a replica not seen for the replica lease is presumed dead. */
  seen_at: string;
  /**
   * The number of the newest migration its runyard knows (0045); null for a replica of a release
   * before (0.1.0), until migration 0045's finish, which makes it required.
   */
  schema_level: number | null;
}

export interface TokensTable {
  id: string;
  kind: TokenKind;
  name: string;
  group_name: string | null;
  tenant_id: string | null;
  /** Hex SHA-256 of the secret; unique. */
  secret_hash: string;
  created_at: string;
  /** Updated by `tokens.find`, at most once a minute. */
  last_used_at: string | null;
  /** A personal API token: the user who owns it (removed with the user) and whose role and tenant it acts with. */
  user_id: string | null;
  /** When the token stops working (`tokens.find` no longer finds it); null: never. */
  expires_at: string | null;
}

export interface UsersTable {
  id: string;
  /** Unique, as typed at `user add`; logins match it exactly. */
  username: string;
  /** Null: a platform admin (role admin) outside every tenant. */
  tenant_id: string | null;
  role: UserRole;
  /** argon2id, PHC string (`$argon2id$v=19$m=...`). */
  password_hash: string;
  created_at: string;
  password_changed_at: string;
  /** Sessions issued before this instant are refused; `users.setPassword` (and remove) moves it to now. */
  sessions_valid_after: string;
}

/** Keys the server generates once and every replica shares; `value` sealed with the store's cipher. */
export interface ServerKeysTable {
  name: string;
  value: string;
  created_at: string;
}

/** Whose a revoked API token was (null: a token of no user), kept once its `tokens` row is gone. */
export interface RevokedTokensTable {
  id: string;
  user_id: string | null;
  revoked_at: string;
}

/** Sessions logged out before their expiry (the JWT's `jti`); rows past `expires_at` are pruned. */
export interface RevokedSessionsTable {
  id: string;
  user_id: string;
  expires_at: string;
}

/** A stored secret; `tenant_id` is `""` outside any tenant, `value` sealed with the store's key. */
export interface SecretsTable {
  tenant_id: string;
  name: string;
  value: string;
  created_at: string;
  updated_at: string;
  /** The id (not the secret) of the token that set it last. */
  updated_by: string | null;
}

/** One audited action (`GET /api/audit`); `details` is JSON without any secret. */
export interface AuditEventsTable {
  id: string;
  at: string;
  actor_kind: string | null;
  actor_user_id: string | null;
  actor_token_id: string | null;
  actor_username: string | null;
  tenant_id: string | null;
  address: string | null;
  action: string;
  target: string | null;
  outcome: "ok" | "denied" | "failed";
  details: string;
}

/** A run's artifact; `content` is UTF-8 text sealed with the store's key, `size` its UTF-8 bytes. */
export interface ArtifactsTable {
  run_id: string;
  /** Unique within the run: an upload under a name the run has replaces it. */
  name: string;
  /** The job whose runner uploaded it; null when the server stored it itself. */
  job_id: string | null;
  size: Int8;
  /** As uploaded, e.g. `text/x-diff`, `application/x-ndjson`. */
  content_type: string;
  content: string;
  /** Hex SHA-256 of the content's UTF-8 bytes. */
  sha256: string;
  /** When this content was stored (a replaced artifact gets the time of the replacement). */
  created_at: string;
}

export interface ApprovalsTable {
  run_id: string;
  step: string;
  /** What the approvers read (the step's message, its variables filled in, secrets masked). */
  message: string;
  /** JSON list of usernames and `role:admin` / `role:member`. */
  approvers: string;
  /** No answer by then is a rejection. */
  deadline: string;
  /** Null while waiting; then approved, rejected or timeout. */
  decision: "approved" | "rejected" | "timeout" | null;
  /** A username, or `token <id>` for a token without a user; null for a timeout. */
  answered_by: string | null;
  comment: string | null;
  answered_at: string | null;
  created_at: string;
  /** Distinct approvers who must approve. */
  required: number;
  /** 0: the run's submitter may not answer. */
  self_approval: number;
  /** No answer is taken before it; null: at once. */
  not_before: string | null;
  /** JSON list of the inputs the approver fills in; null: none. */
  form: string | null;
  /** JSON of the approved form's values. */
  inputs: string | null;
  /** JSON list of who approved, in order. */
  approved_by: string | null;
}

/** One approver's answer to an approval step, once per approver. */
export interface ApprovalVotesTable {
  run_id: string;
  step: string;
  /** A username, or `token <id>`. */
  voter: string;
  decision: "approved" | "rejected";
  /** JSON of the form's values this approver gave; null: none. */
  inputs: string | null;
  comment: string | null;
  answered_at: string;
}

/** The run holding a tenant's concurrency group; free once that run has ended. `tenant_id` `""`: none. */
export interface ConcurrencySlotsTable {
  tenant_id: string;
  group_name: string;
  run_id: string;
  taken_at: string;
}

/** A signed webhook, named per tenant; `tenant_id` `""` outside any tenant, `secret` sealed, `vars` JSON `{NAME: path}`. */
export interface HooksTable {
  /** `/api/hooks/ID`, unique server-wide: random, or the name of a hook made when names were global. */
  id: string;
  /** Unique within its tenant, as saved workflows' names are. */
  name: string;
  tenant_id: string;
  /** The saved workflow of that tenant a delivery starts. */
  workflow: string;
  vars: string;
  secret: string;
  created_at: string;
  /** The token id, else the user id, that made it. */
  created_by: string | null;
}

/** One delivery of a hook (`X-GitHub-Delivery`); `run_id` null while its run is being started. */
export interface HookDeliveriesTable {
  hook_id: string;
  delivery_id: string;
  run_id: string | null;
  received_at: string;
}

/** A code forge's repo whose issues start agent tasks; `tenant_id` is `""` outside any tenant. */
export interface ForgesTable {
  id: string;
  tenant_id: string;
  /** `github` (the only forge today). */
  kind: string;
  /** `OWNER/NAME`. */
  repo: string;
  /** The REST API's base URL (`https://api.github.com`, or a GitHub Enterprise server's). */
  api_url: string;
  /** The forge API token, sealed with the store's key. */
  token: string;
  /** The webhook secret, sealed. */
  webhook_secret: string;
  /** The label that starts a task when put on an issue. */
  label: string;
  agent: string;
  /** JSON: the task settings every run of the forge gets (tests, sandbox, model, timeout). */
  settings: string;
  created_at: string;
  created_by: string | null;
}

/** One delivery to a forge's webhook (`X-GitHub-Delivery`) and what became of it. */
export interface ForgeDeliveriesTable {
  forge_id: string;
  delivery_id: string;
  event: string;
  outcome: string;
  run_id: string | null;
  received_at: string;
}

/** A run a forge's issue started: the issue, and the pull request it opened (once it has). */
export interface ForgeRunsTable {
  run_id: string;
  forge_id: string;
  issue_number: number;
  pull_number: number | null;
  reported: number;
  created_at: string;
}

/** One version of a tenant's saved workflow; `tenant_id` is `""` outside any tenant. */
export interface SavedWorkflowsTable {
  tenant_id: string;
  name: string;
  /** 1 for the first save of the name, then one more at each save. */
  version: number;
  /** The YAML text, sealed with the store's key (a workflow may hold a direct host's token). */
  workflow: string;
  /** The file name shown in validation messages. */
  file: string;
  created_at: string;
  /** The token id, else the user id, that saved this version. */
  created_by: string | null;
  /** 1: saved by a platform admin, so its scheduled runs may call any destination. */
  unrestricted: number;
  /** When the version was made the one its triggers run; null while it waits (pending). */
  promoted_at: ColumnType<string | null, string | null | undefined, string | null>;
  promoted_by: ColumnType<string | null, string | null | undefined, string | null>;
}

/** One `schedule:` entry of a saved workflow's latest version. */
export interface SchedulesTable {
  id: string;
  tenant_id: string;
  workflow_name: string;
  /** Its place in the workflow's `schedule:` list, from 0. */
  position: number;
  workflow_version: number;
  cron: string;
  timezone: string;
  overlap: string;
  catch_up: string;
  /** Ticks after this instant are the schedule's (a new schedule does not catch up on the past). */
  armed_at: string;
  /** The newest tick handled (fired, skipped or missed); null before the first. */
  last_tick_at: string | null;
  /** The next tick due after `last_tick_at` (or `armed_at`); null when the cron has no more. */
  next_tick_at: string | null;
  /** Whose trigger it is: the token or user id that promoted its version; its runs' trigger. */
  owner: ColumnType<string | null, string | null | undefined, string | null>;
}

/** One tick of a schedule, inserted before its run starts: the key makes it fire once. */
export interface ScheduleTicksTable {
  schedule_id: string;
  tick_at: string;
  outcome: string;
  /** The run it started (or, skipped, the run still running); null when none. */
  run_id: string | null;
  detail: string | null;
  /** How many ticks the row stands for: more than 1 for a row that records a span of missed ticks. */
  ticks: ColumnType<number, number | undefined, number>;
  created_at: string;
}

/** A creating request's `Idempotency-Key`, per caller; `status` and `response` null while it is served. */
export interface IdempotencyKeysTable {
  owner: string;
  key: string;
  request_hash: string;
  claim_id: string;
  claimed_at: string;
  expires_at: string;
  status: number | null;
  /** The 2xx answer's body, as sent. */
  response: string | null;
}

/** One `agent.usage` event, with whose it was; `tenant_id` `""` outside any tenant, `cost_usd` null when unreported. */
export interface AgentUsageTable {
  run_id: string;
  seq: Int8;
  at: string;
  tenant_id: string;
  /** A personal token's user, else the token (or `""` for none). */
  user_id: string;
  agent: string;
  model: string;
  input_tokens: Int8;
  output_tokens: Int8;
  cost_usd: number | null;
}

/** A tenant's or user's dollar limits per UTC day and month; null: none for that period. */
export interface BudgetsTable {
  scope: "tenant" | "user";
  /** The tenant's id, or the user's name. */
  subject: string;
  usd_per_day: number | null;
  usd_per_month: number | null;
  updated_at: string;
  updated_by: string | null;
  /** 1: a platform admin's, which a tenant's admin may lower but not lift (migration 0043). */
  platform_bound: ColumnType<number, number | undefined, number>;
}

/** Spend a running agent turn holds of what is left of its tenant's and user's budgets. */
export interface SpendReservationsTable {
  id: string;
  run_id: string;
  /** `""`: outside any tenant. */
  tenant_id: string;
  /** A user's id (or a token's); `""`: none. */
  user_id: string;
  usd: number;
  created_at: string;
  expires_at: string;
  /** The run's highest `agent_usage` seq at the hold: its spend after counts against the hold (by seq: usage is dated by the runner's clock). */
  after_seq: number;
}

export interface Database {
  agent_usage: AgentUsageTable;
  spend_reservations: SpendReservationsTable;
  budgets: BudgetsTable;
  approvals: ApprovalsTable;
  approval_votes: ApprovalVotesTable;
  saved_workflows: SavedWorkflowsTable;
  schedules: SchedulesTable;
  schedule_ticks: ScheduleTicksTable;
  bots: BotsTable;
  bot_versions: BotVersionsTable;
  bot_samples: BotSamplesTable;
  bot_alerts: BotAlertsTable;
  tenant_bot_alerts: TenantBotAlertsTable;
  bot_hook_hits: BotHookHitsTable;
  runs: RunsTable;
  run_events: RunEventsTable;
  artifacts: ArtifactsTable;
  jobs: JobsTable;
  job_labels: JobLabelsTable;
  runners: RunnersTable;
  tokens: TokensTable;
  replicas: ReplicasTable;
  secrets: SecretsTable;
  users: UsersTable;
  server_keys: ServerKeysTable;
  revoked_sessions: RevokedSessionsTable;
  revoked_tokens: RevokedTokensTable;
  audit_events: AuditEventsTable;
  concurrency_slots: ConcurrencySlotsTable;
  hooks: HooksTable;
  hook_deliveries: HookDeliveriesTable;
  forges: ForgesTable;
  forge_deliveries: ForgeDeliveriesTable;
  forge_runs: ForgeRunsTable;
  idempotency_keys: IdempotencyKeysTable;
}
