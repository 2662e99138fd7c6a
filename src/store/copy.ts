import { chmodSync, existsSync } from "node:fs";
import { type Kysely, type RawBuilder, sql, type Transaction } from "kysely";
import { RunyardError } from "../core/errors.js";
import { assertExhaustive } from "../core/exhaustive.js";
import {
  type DatabaseLocation,
  describeLocation,
  type OpenedDatabase,
  openDatabase,
} from "./database-location.js";
import { type ColumnInfo, countRows, listColumns, listTables } from "./introspect.js";
import { upgradeSchema } from "./schema-upgrade.js";
import { migrationTables, readSchemaStatus, storeTooNew } from "./store-status.js";

/**
 * Every data table `db copy` moves, parents first so foreign keys hold at each commit. A new table
 * goes here or in `tablesNotCopied`: a unit test fails on one in neither list.
 */
export const copiedTables: readonly string[] = [
  "runs",
  "run_events",
  "artifacts",
  "jobs",
  "job_labels",
  "runners",
  "users",
  "tokens",
  "secrets",
  "revoked_sessions",
  "revoked_tokens",
  "server_keys",
  "audit_events",
  "bots",
  "approvals",
  "approval_votes",
  "concurrency_slots",
  "hooks",
  "hook_deliveries",
  "saved_workflows",
  "schedules",
  "schedule_ticks",
  "forges",
  "forge_deliveries",
  "forge_runs",
  "idempotency_keys",
  "agent_usage",
  "budgets",
  "tenant_bot_alerts",
  "bot_versions",
  "bot_samples",
  "bot_alerts",
];

/** Not copied: migration bookkeeping (the target has its own), and state live only now (replicas, holds). */
export const tablesNotCopied: readonly string[] = [
  ...migrationTables,
  "replicas",
  "bot_hook_hits",
  "spend_reservations",
];

export interface CopyProgress {
  table: string;
  copied: number;
  total: number;
}

export interface CopyOptions {
  /** Rows read and written per transaction. Default 2000. */
  batchSize?: number;
  /** Called after each batch (and once for an empty table). */
  onProgress?: (progress: CopyProgress) => void;
  /** How long a first PostgreSQL connection may take. Default 10000 ms. */
  connectTimeoutMs?: number;
}

/** One copied table: rows on each side, counted again after the copy. */
export interface CopiedTable {
  name: string;
  source: number;
  target: number;
  /** Source columns the target does not have, left behind (none when both are this runyard's schema). */
  columnsLeftOut: string[];
}

export interface CopyReport {
  source: string;
  target: string;
  /** Migrations applied to the source before reading it (a source this runyard had not opened yet). */
  sourceMigrated: string[];
  /** The schema version both sides are at. */
  version: string | undefined;
  tables: CopiedTable[];
  /** Tables present in the source and deliberately not copied (`tablesNotCopied`). */
  notCopied: string[];
  /** Tables in the source that runyard does not know (made by hand?), not copied. */
  unknown: string[];
  /** Copied tables whose recount differs between the sides; the copy is not to be trusted then. */
  mismatched: CopiedTable[];
}

const defaultBatchSize = 2000;
/** Bound parameters per insert statement: PostgreSQL allows 65535, SQLite 32766. */
const maxParameters = 30_000;

/**
 * Copies every row of every data table, raw: ciphertext stays as it is, so the target's servers need
 * the source's secret key. The source (migrated first, as a server would on start) is read in one
 * snapshot, consistent while something writes to it. The target must be empty (CONFLICT before any
 * write) and is written in batches, one transaction each; `mismatched` lists tables whose recounts differ.
 */
export async function copyStore(
  from: DatabaseLocation,
  to: DatabaseLocation,
  opts: CopyOptions = {},
): Promise<CopyReport> {
  const batchSize = Math.max(1, opts.batchSize ?? defaultBatchSize);
  const connect = opts.connectTimeoutMs ? { connectTimeoutMs: opts.connectTimeoutMs } : {};
  if (sameLocation(from, to)) {
    throw new RunyardError("USAGE", "--from and --to name the same database", {
      hint: "Copy into a new, empty database.",
    });
  }
  let source = await openDatabase(from, { readonly: true, ...connect });
  let target: OpenedDatabase | undefined;
  try {
    const sourceSchema = await readSchemaStatus(raw(source), source.dialect);
    if (sourceSchema.newer.length > 0) throw storeTooNew(describeLocation(from), sourceSchema);
    if (sourceSchema.applied.length === 0) {
      throw new RunyardError(
        "USAGE",
        `${describeLocation(from)} is not a runyard database (it was never migrated)`,
        { hint: "Give the home folder or database a runyard server has used." },
      );
    }

    target = await openDatabase(to, { readonly: false, ...connect });
    const targetSchema = await readSchemaStatus(raw(target), target.dialect);
    if (targetSchema.newer.length > 0) throw storeTooNew(describeLocation(to), targetSchema);
    await refuseNonEmpty(target, describeLocation(to));

    if (sourceSchema.pending.length > 0) {
      if (from.dialect === "sqlite") {
        await source.close();
        source = await openDatabase(from, { readonly: false });
      }
      // As a server of this runyard would on its next start: beside live replicas, only what they
      // can live with, else UPGRADE_BLOCKED.
      await upgradeSchema(raw(source), source.dialect);
    }
    // An empty target: every migration's finish runs too, as no older replica can be on it.
    await upgradeSchema(raw(target), target.dialect);

    const sourceTables = await listTables(raw(source), source.dialect);
    const plan = await planCopy(source, target, sourceTables);

    const writer = target;
    let current: CopyProgress | undefined;
    await snapshot(source, async (reader) => {
      for (const table of plan) {
        await copyTable(reader, writer, table.name, table.columns, batchSize, (progress) => {
          current = progress;
          opts.onProgress?.(progress);
        });
      }
    }).catch((error: unknown) => {
      const where = current
        ? ` in table ${current.table} after ${current.copied} of ${current.total} rows`
        : "";
      throw new RunyardError("INTERNAL", `the copy stopped${where}: ${(error as Error).message}`, {
        hint: `The target ${describeLocation(to)} now holds part of the data: drop and recreate it (or remove the file), then run db copy again.`,
        cause: error,
      });
    });

    if (target.dialect === "postgres") await advanceSequences(writer, plan);

    const tables: CopiedTable[] = [];
    for (const table of plan) {
      tables.push({
        name: table.name,
        source: await countRows(raw(source), table.name),
        target: await countRows(raw(target), table.name),
        columnsLeftOut: table.columnsLeftOut,
      });
    }
    return {
      source: describeLocation(from),
      target: describeLocation(to),
      sourceMigrated: sourceSchema.pending,
      version: (await readSchemaStatus(raw(target), target.dialect)).version,
      tables,
      notCopied: sourceTables.filter((name) => tablesNotCopied.includes(name)),
      unknown: sourceTables.filter((name) => !copiedTables.includes(name) && !tablesNotCopied.includes(name)),
      mismatched: tables.filter((table) => table.source !== table.target),
    };
  } finally {
    await source.close();
    await target?.close();
    if (target && to.dialect === "sqlite") protectSqliteFile(to.path);
  }
}

/** Serial columns (none today) took the source's values: their sequences move past to avoid collisions. */
async function advanceSequences(target: OpenedDatabase, plan: readonly TablePlan[]): Promise<void> {
  for (const table of plan) {
    for (const column of table.columns) {
      const { rows } = await sql<{ sequence: string | null }>`
        select pg_get_serial_sequence(${table.name}, ${column.name}) as sequence`.execute(raw(target));
      const sequence = rows[0]?.sequence;
      if (!sequence) continue;
      const next = sql`(select coalesce(max(${sql.id(column.name)}), 0) + 1 from ${sql.table(table.name)})`;
      await sql`select setval(${sequence}, ${next}, false)`.execute(raw(target));
    }
  }
}

/** The copy holds token hashes and ciphertext: private to its owner, as a server's own file is. */
function protectSqliteFile(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(file)) chmodSync(file, 0o600);
  }
}

interface TablePlan {
  name: string;
  /** The columns both sides have, in the target's order, with the target's kinds and key. */
  columns: ColumnInfo[];
  columnsLeftOut: string[];
}

/** Each copied table the source has, with the columns both sides share (found by introspection). */
async function planCopy(
  source: OpenedDatabase,
  target: OpenedDatabase,
  sourceTables: readonly string[],
): Promise<TablePlan[]> {
  const plan: TablePlan[] = [];
  for (const name of copiedTables) {
    if (!sourceTables.includes(name)) continue;
    const sourceColumns = await listColumns(raw(source), source.dialect, name);
    const targetColumns = await listColumns(raw(target), target.dialect, name);
    const shared = targetColumns.filter((column) => sourceColumns.some((s) => s.name === column.name));
    plan.push({
      name,
      columns: shared,
      columnsLeftOut: sourceColumns.filter((s) => !shared.some((c) => c.name === s.name)).map((s) => s.name),
    });
  }
  return plan;
}

function raw(opened: OpenedDatabase): Kysely<unknown> {
  return opened.db as Kysely<unknown>;
}

function sameLocation(a: DatabaseLocation, b: DatabaseLocation): boolean {
  if (a.dialect === "sqlite" && b.dialect === "sqlite") return a.path === b.path;
  if (a.dialect === "postgres" && b.dialect === "postgres") {
    try {
      const [x, y] = [new URL(a.url), new URL(b.url)];
      return x.host === y.host && x.pathname === y.pathname;
    } catch {
      return a.url === b.url;
    }
  }
  return false;
}

async function refuseNonEmpty(target: OpenedDatabase, name: string): Promise<void> {
  const tables = await listTables(raw(target), target.dialect);
  const inCopyOrder = [
    ...copiedTables.filter((t) => tables.includes(t)),
    ...tables.filter((t) => !copiedTables.includes(t)),
  ];
  for (const table of inCopyOrder) {
    if (tablesNotCopied.includes(table)) continue;
    const rows = await countRows(raw(target), table);
    if (rows > 0) {
      throw new RunyardError(
        "CONFLICT",
        `the target ${name} is not empty: table ${table} holds ${rows} row${rows === 1 ? "" : "s"}; nothing was copied`,
        {
          hint:
            target.dialect === "postgres"
              ? "Use an empty database; drop and recreate it with createdb (dropdb NAME && createdb -O USER NAME)."
              : "Use an empty database: give a new file or a new folder as --to.",
        },
      );
    }
  }
}

/** Runs `read` in one transaction on the source: a consistent snapshot, read-only on PostgreSQL. */
async function snapshot(
  source: OpenedDatabase,
  read: (reader: Transaction<unknown>) => Promise<void>,
): Promise<void> {
  const begin = raw(source).transaction();
  await (source.dialect === "postgres"
    ? begin.setIsolationLevel("repeatable read").setAccessMode("read only")
    : begin
  ).execute(read);
}

async function copyTable(
  reader: Transaction<unknown>,
  writer: OpenedDatabase,
  table: string,
  columns: ColumnInfo[],
  batchSize: number,
  onProgress: CopyOptions["onProgress"],
): Promise<void> {
  const total = await countRows(reader, table);
  const key = columns.filter((c) => c.primaryKey > 0).sort((a, b) => a.primaryKey - b.primaryKey);
  let copied = 0;
  let after: unknown[] | undefined;
  onProgress?.({ table, copied, total });
  for (;;) {
    const rows = await readBatch(reader, table, columns, key, batchSize, copied, after);
    if (rows.length === 0) break;
    await writeBatch(writer, table, columns, rows);
    copied += rows.length;
    const last = rows[rows.length - 1] as Record<string, unknown>;
    after = key.map((column) => last[column.name]);
    onProgress?.({ table, copied, total });
    if (rows.length < batchSize) break;
  }
}

/** The next batch by keyset paging, so a large table costs the same per batch; no primary key: by offset. */
async function readBatch(
  reader: Transaction<unknown>,
  table: string,
  columns: ColumnInfo[],
  key: ColumnInfo[],
  limit: number,
  offset: number,
  after: unknown[] | undefined,
): Promise<Record<string, unknown>[]> {
  const list = sql.join(columns.map((c) => sql.id(c.name)));
  if (key.length === 0) {
    const { rows } = await sql<Record<string, unknown>>`
      select ${list} from ${sql.table(table)}
      order by ${list} limit ${limit} offset ${offset}`.execute(reader);
    return rows;
  }
  const keyList = sql.join(key.map((c) => sql.id(c.name)));
  const where: RawBuilder<unknown> = after ? sql`where (${keyList}) > (${sql.join(after)})` : sql``;
  const { rows } = await sql<Record<string, unknown>>`
    select ${list} from ${sql.table(table)} ${where} order by ${keyList} limit ${limit}`.execute(reader);
  return rows;
}

async function writeBatch(
  writer: OpenedDatabase,
  table: string,
  columns: ColumnInfo[],
  rows: Record<string, unknown>[],
): Promise<void> {
  const perStatement = Math.max(1, Math.floor(maxParameters / columns.length));
  const list = sql.join(columns.map((c) => sql.id(c.name)));
  await raw(writer)
    .transaction()
    .execute(async (trx) => {
      for (let start = 0; start < rows.length; start += perStatement) {
        const values = rows
          .slice(start, start + perStatement)
          .map((row) => sql`(${sql.join(columns.map((c) => storedValue(row[c.name], c)))})`);
        await sql`insert into ${sql.table(table)} (${list}) values ${sql.join(values)}`.execute(trx);
      }
    });
}

/**
 * node-postgres reads `bigint` as text, which SQLite would keep as text: numbers become numbers again
 * (a BigInt past 2^53). A number in a text column (SQLite lets one in) becomes its text.
 */
export function storedValue(value: unknown, column: Pick<ColumnInfo, "kind">): unknown {
  if (value === null || value === undefined) return null;
  switch (column.kind) {
    case "integer":
      if (typeof value === "string" && /^-?\d+$/.test(value)) {
        const number = Number(value);
        return Number.isSafeInteger(number) ? number : BigInt(value);
      }
      return value;
    case "real":
      return typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value))
        ? Number(value)
        : value;
    case "text":
      return typeof value === "number" || typeof value === "bigint" ? String(value) : value;
    case "other":
      return value;
    default:
      return assertExhaustive(column.kind, "column kind");
  }
}
