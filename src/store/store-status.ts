import { existsSync } from "node:fs";
import { type Kysely, sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import { type DatabaseLocation, describeLocation, openDatabase } from "./database-location.js";
import { countRows, type DialectName, listColumns, listTables } from "./introspect.js";
import {
  migrationFinishedTableName,
  migrationLockTableName,
  migrationStateTableName,
  migrations,
  migrationTableName,
} from "./migrations/index.js";
import {
  readSchemaState,
  readSchemaStatus,
  type SchemaState,
  type SchemaStatus,
  unfinishedMigrations,
} from "./migrations/state.js";

export { readSchemaStatus, type SchemaStatus } from "./migrations/state.js";

/** A replica as its row in the database says (`runyard db status`). */
export interface ReplicaStatus {
  id: string;
  hostname: string;
  version: string;
  /** The newest migration its runyard knows; null for a replica of 0.1.0. */
  schema_level: number | null;
  seen_at: string;
}

/** What `runyard db status` reports. */
export interface StoreStatus extends SchemaStatus {
  /** Who may write it (from 0045 on): the oldest schema level, and its release. */
  writers: SchemaState | undefined;
  /** Applied migrations whose finishing step has not run: it waits for older replicas to stop. */
  unfinished: string[];
  /** The replicas' rows: each live replica's, and a stopped one's until the fleet removes it. */
  replicas: ReplicaStatus[];
  /** The URL with its password replaced by `***`, or the SQLite file's path. */
  database: string;
  dialect: DialectName;
  /** False for a SQLite file that is not there yet (a server creates it on its first start). */
  exists: boolean;
  /** Rows per table, migration bookkeeping left out. */
  tables: Array<{ name: string; rows: number }>;
}

/** The migration bookkeeping tables: part of the schema, not of the data. */
export const migrationTables: readonly string[] = [
  migrationTableName,
  migrationLockTableName,
  migrationStateTableName,
  migrationFinishedTableName,
];

/** The database's schema version, pending migrations and row counts, without changing it. */
export async function readStoreStatus(location: DatabaseLocation): Promise<StoreStatus> {
  const database = describeLocation(location);
  if (location.dialect === "sqlite" && !existsSync(location.path)) {
    return {
      database,
      dialect: "sqlite",
      exists: false,
      ...emptySchema(),
      writers: undefined,
      unfinished: [],
      replicas: [],
      tables: [],
    };
  }
  const opened = await openDatabase(location, { readonly: true });
  try {
    const db = opened.db as Kysely<unknown>;
    const upgrade = await readUpgradeStatus(db, opened.dialect);
    const tables: StoreStatus["tables"] = [];
    for (const name of await listTables(db, opened.dialect)) {
      if (!migrationTables.includes(name)) tables.push({ name, rows: await countRows(db, name) });
    }
    return { database, dialect: opened.dialect, exists: true, ...upgrade, tables };
  } finally {
    await opened.close();
  }
}

/** Where an open database stands in an upgrade: its migrations, writers, finishes and replicas (no row counts). */
export type UpgradeStatus = Pick<
  StoreStatus,
  "applied" | "version" | "pending" | "newer" | "writers" | "unfinished" | "replicas"
>;

export async function readUpgradeStatus(db: Kysely<unknown>, dialect: DialectName): Promise<UpgradeStatus> {
  const schema = await readSchemaStatus(db, dialect);
  const writers = await readSchemaState(db);
  const unfinished = (await unfinishedMigrations(db)).filter((name) => schema.applied.includes(name));
  return { ...schema, writers, unfinished, replicas: await readReplicas(db, dialect) };
}

async function readReplicas(db: Kysely<unknown>, dialect: DialectName): Promise<ReplicaStatus[]> {
  const columns = (await listColumns(db, dialect, "replicas")).map((column) => column.name);
  if (columns.length === 0) return [];
  const level = columns.includes("schema_level") ? sql`schema_level` : sql`null`;
  const { rows } = await sql<ReplicaStatus>`
    select id, hostname, version, ${level} as schema_level, seen_at from replicas order by id`.execute(db);
  return rows.map((row) => ({
    ...row,
    schema_level: row.schema_level === null ? null : Number(row.schema_level),
  }));
}

function emptySchema(): SchemaStatus {
  return { applied: [], version: undefined, pending: Object.keys(migrations).sort(), newer: [] };
}

/** The error for a database a newer runyard migrated, naming its newest migration. */
export function storeTooNew(database: string, schema: SchemaStatus): RunyardError {
  return new RunyardError(
    "STORE_TOO_NEW",
    `${database} was migrated by a newer runyard (migration ${schema.newer.at(-1)}); upgrade runyard to use it`,
  );
}
