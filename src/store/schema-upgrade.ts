import { setTimeout as delay } from "node:timers/promises";
import { type Kysely, sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { copySchema, isEmptySqlite, rememberSchema } from "./fresh-schema.js";
import type { DialectName } from "./introspect.js";
import { migrateToLatest, migrations } from "./migrations/index.js";
import {
  describeLevel,
  firstCheckedMigration,
  migrationLevel,
  releaseBefore,
} from "./migrations/releases.js";
import {
  readSchemaState,
  readSchemaStatus,
  type SchemaState,
  type SchemaStatus,
  unfinishedMigrations,
} from "./migrations/state.js";

export { readSchemaState, type SchemaState, unfinishedMigrations } from "./migrations/state.js";

/*
 * Replicas of two releases on one database (docs/upgrading.md). A migration is either one the
 * release before can live with (it only adds), or it is not: then a replica starting it waits for
 * no older replica to be alive, and older replicas that meet it anyway stop writing. What removes or
 * tightens is a migration's `finish`, run once no replica older than it is alive. The database
 * keeps the oldest schema level whose runyard may still write it; each replica compares it with its
 * own, at start and at each heartbeat.
 */

/** This runyard's schema level: the number of its newest migration. */
export const schemaLevel = migrationLevel(Object.keys(migrations).sort().at(-1) ?? "0");

export interface UpgradeOptions {
  logger?: Logger;
  /**
   * On PostgreSQL, how long a start watches older replicas' heartbeats before it takes one that
   * has not changed for dead (the replica lease; default 10 s).
   */
  olderReplicaWaitMs?: number;
}

const stateTable = "runyard_migration_state";
const finishedTable = "runyard_migration_finished";

/**
 * Brings a database to this runyard's schema as a replica starts: refuses one a newer runyard made
 * unwritable for it (STORE_TOO_NEW), refuses to change tables older live replicas write
 * (UPGRADE_BLOCKED), applies the pending migrations, and runs the `finish` steps no live replica
 * stands in the way of (all of them on SQLite, which one process holds).
 */
export async function upgradeSchema(
  db: Kysely<unknown>,
  dialect: DialectName,
  opts: UpgradeOptions = {},
): Promise<void> {
  // A new SQLite database is made as the last new one in this process was (fresh-schema.ts).
  const empty = dialect === "sqlite" && (await isEmptySqlite(db));
  if (empty && (await copySchema(db, opts.logger))) return;
  const status = await readSchemaStatus(db, dialect);
  if (status.newer.length > 0) {
    const state = await readSchemaState(db);
    if (state === undefined || state.writersFrom > schemaLevel || status.pending.length > 0) {
      throw storeTooNew(status, state);
    }
    opts.logger?.warn(
      { newer: status.newer, schemaLevel, writersFrom: state.writersFrom },
      "a newer runyard migrated this database in a way this one can live with; starting without migrating",
    );
    return;
  }
  const alone = dialect === "sqlite" || status.applied.length === 0;
  if (!alone && status.pending.length > 0) await waitOutOlderReplicas(db, status, opts);
  await migrateToLatest(db, opts.logger);
  await settleWriters(db);
  await finishMigrations(db, { dialect, alone, ...(opts.logger ? { logger: opts.logger } : {}) });
  if (empty) await rememberSchema(db);
}

/**
 * Runs the `finish` of each applied migration that has one and has not finished, in order, while
 * no replica older than the migration has a row (`alone`: without asking, for SQLite and a new
 * database). Each in its own transaction, with the writers level raised to the migration's.
 * Returns the migrations finished; stops at the first one an older replica holds back.
 */
export async function finishMigrations(
  db: Kysely<unknown>,
  opts: { dialect: DialectName; alone: boolean; logger?: Logger },
): Promise<string[]> {
  const finished: string[] = [];
  // Read first without a transaction: the leader asks every round, and nearly always nothing waits.
  const waiting = await unfinishedMigrations(db);
  if (waiting.length === 0) return finished;
  for (const name of waiting) {
    const outcome = await db.transaction().execute(async (trx) => {
      // Taken first: two finishers (a leader and `runyard db migrate --finish`) go one at a time.
      await settleWriters(trx, { lock: opts.dialect === "postgres" });
      const applied = await sql<{
        name: string;
      }>`select name from runyard_migration where name = ${name}`.execute(trx);
      if (applied.rows.length === 0) return "not applied" as const;
      const done = await sql<{
        name: string;
      }>`select name from runyard_migration_finished where name = ${name}`.execute(trx);
      if (done.rows.length > 0) return "finished before" as const;
      if (!opts.alone && (await olderReplicas(trx, migrationLevel(name))).length > 0) return "held" as const;
      await migrations[name]?.finish?.(trx);
      await sql`insert into runyard_migration_finished (name, finished_at) values (${name}, ${new Date().toISOString()})`.execute(
        trx,
      );
      await settleWriters(trx);
      return "finished" as const;
    });
    if (outcome === "held" || outcome === "not applied") break;
    if (outcome === "finished") {
      finished.push(name);
      opts.logger?.info({ migration: name }, "store migration finished (its contract part ran)");
    }
  }
  return finished;
}

/** True for a migration the release before it cannot run beside. */
export function breaksOlder(name: string): boolean {
  return name < firstCheckedMigration || migrations[name]?.breaksOlder === true;
}

/**
 * Raises the stored writers level to what the applied and finished migrations this runyard knows
 * demand (never lowers it: a newer runyard may have raised it further). `lock` (PostgreSQL) takes
 * the row for the transaction first.
 */
async function settleWriters(db: Kysely<unknown>, opts: { lock?: boolean } = {}) {
  const present = await sql<{
    name: string;
  }>`select name from runyard_migration where name = ${firstCheckedMigration}`.execute(db);
  if (present.rows.length === 0) return;
  // PostgreSQL locks the row for the transaction; SQLite's one writer at a time is the lock there.
  const current = await sql<{ writers_from: number | string }>`
    select writers_from from ${sql.table(stateTable)} where id = 1 ${opts.lock ? sql`for update` : sql``}`.execute(
    db,
  );
  const applied = (await sql<{ name: string }>`select name from runyard_migration`.execute(db)).rows.map(
    (r) => r.name,
  );
  const finished = (
    await sql<{ name: string }>`select name from ${sql.table(finishedTable)}`.execute(db)
  ).rows.map((r) => r.name);
  let level = current.rows[0] ? Number(current.rows[0].writers_from) : 0;
  for (const name of applied) {
    if (!(name in migrations)) continue;
    const own = migrationLevel(name);
    const before = releaseBefore(own);
    level = Math.max(level, breaksOlder(name) || !before ? own : migrationLevel(before.newestMigration));
  }
  for (const name of finished) if (name in migrations) level = Math.max(level, migrationLevel(name));
  const writersVersion = describeLevel(level);
  if (current.rows[0] && Number(current.rows[0].writers_from) === level) return;
  // One statement, so replicas starting together neither both insert nor lower what another raised.
  await sql`insert into ${sql.table(stateTable)} (id, writers_from, writers_version) values (1, ${level}, ${writersVersion})
    on conflict (id) do update set writers_from = excluded.writers_from, writers_version = excluded.writers_version
    where ${sql.table(stateTable)}.writers_from < excluded.writers_from`.execute(db);
}

interface ReplicaRow {
  id: string;
  hostname: string;
  version: string;
  seen_at: string;
}

/** Replicas with a row whose runyard is older than `level` (no level recorded: older than any). */
async function olderReplicas(db: Kysely<unknown>, level: number): Promise<ReplicaRow[]> {
  const levelled = await sql<{
    name: string;
  }>`select name from runyard_migration where name = ${firstCheckedMigration}`.execute(db);
  const { rows } =
    levelled.rows.length > 0
      ? await sql<ReplicaRow>`select id, hostname, version, seen_at from replicas
          where coalesce(schema_level, 0) < ${level} order by id`.execute(db)
      : await sql<ReplicaRow>`select id, hostname, version, seen_at from replicas order by id`.execute(db);
  return rows;
}

/**
 * Before migrations older replicas cannot live with: watches their heartbeats for up to a lease.
 * One that beats is alive, and the start is refused (UPGRADE_BLOCKED); rows that stay unchanged
 * for the lease, or go, belong to replicas that stopped. `seen_at` is each writer's own clock, so
 * it is only compared with itself.
 */
async function waitOutOlderReplicas(
  db: Kysely<unknown>,
  status: SchemaStatus,
  opts: UpgradeOptions,
): Promise<void> {
  const breaking = status.pending.filter(breaksOlder);
  const first = breaking[0];
  if (first === undefined) return;
  // Before 0003 there is no replicas table, and no replica wrote a row.
  if (!status.applied.includes("0003_replicas")) return;
  const level = migrationLevel(breaking.at(-1) ?? first);
  const seen = new Map((await olderReplicas(db, level)).map((row) => [row.id, row.seen_at]));
  if (seen.size === 0) return;
  const waitMs = opts.olderReplicaWaitMs ?? 10_000;
  opts.logger?.info(
    { replicas: [...seen.keys()], migration: first, waitMs },
    "replicas of an older runyard have rows in this database; checking that they are stopped before migrating",
  );
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    await delay(Math.min(250, Math.max(1, deadline - Date.now())));
    const rows = await olderReplicas(db, level);
    const alive = rows.filter((row) => seen.has(row.id) && seen.get(row.id) !== row.seen_at);
    if (alive.length > 0) throw upgradeBlocked(alive, first);
    if (!rows.some((row) => seen.has(row.id))) return;
  }
  opts.logger?.warn(
    { replicas: [...seen.keys()], waitedMs: waitMs },
    "older replicas' rows did not change for a replica lease: taken for stopped",
  );
}

function upgradeBlocked(alive: ReplicaRow[], migration: string): RunyardError {
  const who = alive.map((row) => `${row.id} (runyard ${row.version} on ${row.hostname})`).join(", ");
  return new RunyardError(
    "UPGRADE_BLOCKED",
    `replicas of an older runyard are running on this database: ${who}; migration ${migration} changes tables they write, so this runyard does not apply it while they run`,
    { details: { replicas: alive.map((row) => row.id), migration } },
  );
}

/** The error for a database a newer runyard made unwritable for this one. */
export function storeTooNew(
  status: Pick<SchemaStatus, "newer">,
  state: SchemaState | undefined,
): RunyardError {
  const needs = state ? `; it is written by ${state.writersVersion} or later` : "";
  return new RunyardError(
    "STORE_TOO_NEW",
    `the database was migrated by a newer runyard (migration ${status.newer.at(-1)})${needs}, and this runyard (schema level ${schemaLevel}) may no longer write it: upgrade this replica`,
  );
}
