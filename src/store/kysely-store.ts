import { type Kysely, sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { agentUsageRepo } from "./agent-usage.js";
import { appendRunEvents } from "./append-run-events.js";
import { approvalsRepo } from "./approvals.js";
import { artifactsRepo } from "./artifacts.js";
import { auditRepo } from "./audit.js";
import { botHistoryRepo } from "./bot-history.js";
import { botHookHitsRepo } from "./bot-hook-hits.js";
import { botVersionsRepo } from "./bot-versions.js";
import { botsRepo } from "./bots.js";
import { budgetsRepo } from "./budgets.js";
import { aesGcmColumns, type ColumnCipher, isSealed, plainColumns } from "./column-cipher.js";
import { concurrencySlotsRepo } from "./concurrency-slots.js";
import { neverLost, type StoreOutages } from "./connection-loss.js";
import type { StoreContext, StoreDialect } from "./dialect.js";
import { fleetRepo } from "./fleet.js";
import { forgesRepo } from "./forges.js";
import { hooksRepo } from "./hooks.js";
import { idempotencyKeysRepo } from "./idempotency-keys.js";
import { jobsRepo } from "./jobs.js";
import { readWriters } from "./migrations/state.js";
import { runEventsRepo } from "./run-events.js";
import { runnersRepo } from "./runners.js";
import { runsRepo } from "./runs.js";
import { savedWorkflowsRepo } from "./saved-workflows.js";
import { schedulesRepo } from "./schedules.js";
import type { Database } from "./schema.js";
import { finishMigrations, upgradeSchema } from "./schema-upgrade.js";
import { secretsRepo } from "./secrets.js";
import { serverKeysRepo } from "./server-keys.js";
import { sessionsRepo } from "./sessions.js";
import { spendReservationsRepo } from "./spend-reservations.js";
import { tenantBotAlertsRepo } from "./tenant-bot-alerts.js";
import { tokensRepo } from "./tokens.js";
import type { Store } from "./types.js";
import { usersRepo } from "./users.js";

/** Options every backend passes through to the shared implementation. */
export interface KyselyStoreOptions {
  logger?: Logger;
  /** The store's clock (timestamps it sets, lease ends); tests replace it. Default: the wall clock. */
  now?: () => Date;
  /**
   * Encrypts job payloads and results, run specs and vars at rest (AES-256-GCM keyed by this
   * text's SHA-256). Without it they are stored as they are (the in-memory store).
   */
  secretKey?: string;
  /** When the database was last found unreachable (PostgreSQL's connections keep it); default never. */
  outages?: StoreOutages;
  /**
   * A connection of its own for this replica's heartbeat (PostgreSQL): a pool busy with runs
   * (a replica recovering them as it starts, a burst of events) would hold up the one write that
   * tells the fleet this replica is alive, and the fleet would fence it. The store owns it.
   */
  heartbeatDb?: Kysely<Database>;
  /** How long a start watches older replicas before migrating past them (`UpgradeOptions`). */
  olderReplicaWaitMs?: number;
}

/**
 * The store over any Kysely instance: migrates it to the latest schema, then serves `Store`.
 * The Kysely instance belongs to the store from here on; `close()` destroys it.
 */
export async function createKyselyStore(
  db: Kysely<Database>,
  dialect: StoreDialect,
  opts: KyselyStoreOptions = {},
): Promise<Store> {
  const cipher = opts.secretKey === undefined ? plainColumns : aesGcmColumns(opts.secretKey);
  try {
    await upgradeSchema(db as Kysely<unknown>, dialect.name, {
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(opts.olderReplicaWaitMs !== undefined ? { olderReplicaWaitMs: opts.olderReplicaWaitMs } : {}),
    });
    await checkSecretKey(db, cipher);
  } catch (error) {
    await db.destroy();
    await opts.heartbeatDb?.destroy();
    throw error;
  }
  const writes = { refused: false };
  const ctx: StoreContext = { db, dialect, now: opts.now ?? (() => new Date()), cipher, writes };
  const heartbeatDb = opts.heartbeatDb;
  let closed = false;
  // The one place the repositories are put together; they share the context and nothing else.
  return {
    runs: runsRepo(ctx),
    events: {
      ...runEventsRepo(ctx),
      appendForRun: (runId, events, opts) => appendRunEvents(ctx, runId, events, opts),
    },
    jobs: jobsRepo(ctx),
    runners: runnersRepo(ctx),
    tokens: tokensRepo(ctx),
    users: usersRepo(ctx),
    sessions: sessionsRepo(ctx),
    serverKeys: serverKeysRepo(ctx),
    secrets: secretsRepo(ctx),
    bots: botsRepo(ctx),
    botVersions: botVersionsRepo(ctx),
    botHistory: botHistoryRepo(ctx),
    tenantBotAlerts: tenantBotAlertsRepo(ctx),
    botHookHits: botHookHitsRepo(ctx),
    artifacts: artifactsRepo(ctx),
    audit: auditRepo(ctx),
    approvals: approvalsRepo(ctx),
    fleet: fleetRepo(ctx, heartbeatDb ? { ...ctx, db: heartbeatDb } : ctx),
    concurrency: concurrencySlotsRepo(ctx),
    hooks: hooksRepo(ctx),
    idempotencyKeys: idempotencyKeysRepo(ctx),
    forges: forgesRepo(ctx),
    savedWorkflows: savedWorkflowsRepo(ctx),
    schedules: schedulesRepo(ctx),
    agentUsage: agentUsageRepo(ctx),
    budgets: budgetsRepo(ctx),
    spendReservations: spendReservationsRepo(ctx),
    schema: {
      // The start migrated the database to this runyard's schema, so the table is there.
      state: () => readWriters((heartbeatDb ?? db) as Kysely<unknown>),
      refuseWrites: () => {
        writes.refused = true;
      },
      finish: () =>
        finishMigrations(db as Kysely<unknown>, {
          dialect: dialect.name,
          alone: dialect.name === "sqlite",
          ...(opts.logger ? { logger: opts.logger } : {}),
        }),
    },
    outages: opts.outages ?? neverLost,
    async close() {
      if (closed) return;
      closed = true;
      await ctx.db.destroy();
      await heartbeatDb?.destroy();
    },
  };
}

/**
 * Sealed columns a key check samples, first hit wins. `server_keys` is sealed by the first
 * server on the database: a replica started with another key is refused before it claims a job
 * whose payload it could not read.
 */
const sealedColumns: ReadonlyArray<readonly [table: string, column: string]> = [
  ["runs", "spec"],
  ["secrets", "value"],
  ["hooks", "secret"],
  ["server_keys", "value"],
  ["artifacts", "content"],
  ["bots", "spec"],
  ["saved_workflows", "workflow"],
];

/** Refuses at once a key that cannot read what is stored, instead of failing on some later read. */
async function checkSecretKey(db: Kysely<Database>, cipher: ColumnCipher): Promise<void> {
  let sealed: string | undefined;
  for (const [table, column] of sealedColumns) {
    const { rows } = await sql<{ value: string }>`
      select ${sql.ref(column)} as value from ${sql.table(table)}
      where ${sql.ref(column)} like 'enc1:%' limit 1`.execute(db);
    sealed = rows[0]?.value;
    if (sealed !== undefined) break;
  }
  if (sealed === undefined || !isSealed(sealed)) return;
  if (cipher === plainColumns) {
    throw new RunyardError(
      "SECRET_KEY_MISMATCH",
      "the database holds encrypted data and no secret key was given",
    );
  }
  cipher.open(sealed);
}
