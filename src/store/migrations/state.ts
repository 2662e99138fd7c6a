import { type Kysely, sql } from "kysely";
import { type DialectName, listTables } from "../introspect.js";
import { migrations, migrationTableName } from "./index.js";
import { firstCheckedMigration } from "./releases.js";

/** Who may write the database. Undefined for a database before 0045 (none of this was kept). */
export interface SchemaState {
  /** The oldest schema level whose runyard may still write. */
  writersFrom: number;
  /** That level named for an operator, as `describeLevel` names it. */
  writersVersion: string;
}

/** The database's writers level; undefined before 0045 (any database, as a start or `db status` reads it). */
export async function readSchemaState(db: Kysely<unknown>): Promise<SchemaState | undefined> {
  const known = await sql<{
    name: string;
  }>`select name from runyard_migration where name = ${firstCheckedMigration}`
    .execute(db)
    .catch(() => ({ rows: [] }));
  if (known.rows.length === 0) return undefined;
  return readWriters(db);
}

/**
 * The writers level of a database this runyard migrated (0045 applied), in one query: what a
 * running replica reads at each heartbeat.
 */
export async function readWriters(db: Kysely<unknown>): Promise<SchemaState | undefined> {
  const { rows } = await sql<{ writers_from: number | string; writers_version: string }>`
    select writers_from, writers_version from runyard_migration_state where id = 1`.execute(db);
  const row = rows[0];
  return row ? { writersFrom: Number(row.writers_from), writersVersion: row.writers_version } : undefined;
}

/** Migrations whose `finish` has not run yet, applied or not. */
export async function unfinishedMigrations(db: Kysely<unknown>): Promise<string[]> {
  const names = Object.keys(migrations)
    .sort()
    .filter((name) => migrations[name]?.finish);
  const done = await sql<{ name: string }>`select name from runyard_migration_finished`
    .execute(db)
    .then((result) => new Set(result.rows.map((row) => row.name)))
    .catch(() => new Set<string>());
  return names.filter((name) => !done.has(name));
}

/** Which of this runyard's migrations a database has, read without applying any. */
export interface SchemaStatus {
  /** Every migration recorded in the database, in name order. */
  applied: string[];
  /** The last applied migration: the schema version. Undefined for a database never migrated. */
  version: string | undefined;
  /** Migrations this runyard knows that the database does not have yet; a server applies them on start. */
  pending: string[];
  /** Applied migrations this runyard does not know: a newer runyard migrated the database. */
  newer: string[];
}

/** Reads the migration table as it is; never creates it or applies anything. */
export async function readSchemaStatus(db: Kysely<unknown>, dialect: DialectName): Promise<SchemaStatus> {
  const tables = await listTables(db, dialect);
  const names = sql<{ name: string }>`select name from ${sql.table(migrationTableName)} order by name`;
  const applied = tables.includes(migrationTableName)
    ? (await names.execute(db)).rows.map((row) => row.name)
    : [];
  const known = Object.keys(migrations).sort();
  return {
    applied,
    version: applied.at(-1),
    pending: known.filter((name) => !applied.includes(name)),
    newer: applied.filter((name) => !known.includes(name)),
  };
}
