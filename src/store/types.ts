import type { AgentUsageRepo } from "./agent-usage.js";
import type { ApprovalsRepo } from "./approvals.js";
import type { ArtifactsRepo } from "./artifacts.js";
import type { AuditRepo } from "./audit.js";
import type { BotHistoryRepo } from "./bot-history.js";
import type { BotHookHitsRepo } from "./bot-hook-hits.js";
import type { BotVersionsRepo } from "./bot-versions.js";
import type { BotsRepo } from "./bots.js";
import type { BudgetsRepo } from "./budgets.js";
import type { ConcurrencySlotsRepo } from "./concurrency-slots.js";
import type { StoreOutages } from "./connection-loss.js";
import type { FleetRepo } from "./fleet.js";
import type { ForgesRepo } from "./forges.js";
import type { HooksRepo } from "./hooks.js";
import type { IdempotencyKeysRepo } from "./idempotency-keys.js";
import type { JobsRepo } from "./jobs.js";
import type { SchemaState } from "./migrations/state.js";
import type { RunEventsRepo } from "./run-events.js";
import type { RunnersRepo } from "./runners.js";
import type { RunsRepo } from "./runs.js";
import type { SavedWorkflowsRepo } from "./saved-workflows.js";
import type { SchedulesRepo } from "./schedules.js";
import type { SecretsRepo } from "./secrets.js";
import type { ServerKeysRepo } from "./server-keys.js";
import type { SessionsRepo } from "./sessions.js";
import type { SpendReservationsRepo } from "./spend-reservations.js";
import type { TenantBotAlertsRepo } from "./tenant-bot-alerts.js";
import type { TokensRepo } from "./tokens.js";
import type { UsersRepo } from "./users.js";

/*
 * The store's public contract (docs/architecture.md, "The store's repositories"): `Store`, one
 * repository per record type, each declared with its records beside its queries (`runs.ts` has
 * `RunsRepo` and `RunRecord`); this file keeps what they share. Field names are snake_case, as in
 * the event spine and the HTTP API, so records pass through unchanged; timestamps given to the
 * store are normalised to ISO-8601 UTC text (`isoTime`), which sorts as time does.
 */

/** A compare-and-set guard: the update applies only while the record is in one of these states. */
export interface IfStatus<S extends string> {
  ifStatus?: readonly S[];
}

/**
 * Everything the server keeps, one repository per record type; a consumer takes the repositories
 * it uses. One implementation over Kysely (`kysely-store.ts`) serves every backend. Methods that
 * look a record up return `undefined` when it does not exist; unexpected states throw
 * `RunyardError` (`CONFLICT` for a taken id, `NOT_FOUND` for events or jobs of a missing run).
 */
/** The database's schema as the replicas sharing it see it (`schema-upgrade.ts`). */
export interface SchemaRepo {
  /** The oldest schema level whose runyard may write the database; read fresh. */
  state(): Promise<SchemaState | undefined>;
  /** Runs the `finish` steps no replica older than them holds back; returns those it ran. */
  finish(): Promise<string[]>;
  /** From now on reads write nothing (a token's `last_used_at`): a newer runyard owns the schema. */
  refuseWrites(): void;
}

export interface Store {
  runs: RunsRepo;
  events: RunEventsRepo;
  jobs: JobsRepo;
  runners: RunnersRepo;
  tokens: TokensRepo;
  users: UsersRepo;
  sessions: SessionsRepo;
  serverKeys: ServerKeysRepo;
  secrets: SecretsRepo;
  bots: BotsRepo;
  botVersions: BotVersionsRepo;
  /** Bots' resource history and alert episodes. */
  botHistory: BotHistoryRepo;
  /** The alert rules each tenant's admin set for all its bots. */
  tenantBotAlerts: TenantBotAlertsRepo;
  /** Webhook requests per bot and second, the rate limit every replica shares. */
  botHookHits: BotHookHitsRepo;
  artifacts: ArtifactsRepo;
  audit: AuditRepo;
  approvals: ApprovalsRepo;
  fleet: FleetRepo;
  concurrency: ConcurrencySlotsRepo;
  hooks: HooksRepo;
  idempotencyKeys: IdempotencyKeysRepo;
  forges: ForgesRepo;
  savedWorkflows: SavedWorkflowsRepo;
  schedules: SchedulesRepo;
  /** The agents' usage events, summed for spend budgets and reports. */
  agentUsage: AgentUsageRepo;
  /** Spend budgets per tenant and user. */
  budgets: BudgetsRepo;
  /** Spend running agent turns hold of their budgets. */
  spendReservations: SpendReservationsRepo;
  /** Who may write the database, and the migrations' contract parts (docs/upgrading.md). */
  schema: SchemaRepo;
  /**
   * When the database was last found unreachable: silence of replicas and runners while it was
   * away is not theirs, so the fleet's lease clocks start again from its return.
   */
  outages: StoreOutages;
  /** Closes the database; the store is unusable afterwards. Calling it twice is harmless. */
  close(): Promise<void>;
}
