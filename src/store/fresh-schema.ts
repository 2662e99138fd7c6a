import { type Kysely, sql } from "kysely";
import type { Logger } from "../core/logger.js";

/**
 * A new SQLite database made at once as the migrations made the first new one in this process:
 * its tables, indexes, views and triggers as SQLite keeps them (`sqlite_master`) and the rows the
 * migrations wrote (their bookkeeping), in one transaction. The 45 migrations one by one take
 * about 40 ms of CPU a store, a copy 2 to 4. A process that opens many new stores (tests, each
 * with an in-memory one) pays the migrations once; a server opening its one file pays them as
 * before, and a database that holds anything is migrated, never made over.
 */
export interface MadeSchema {
  /** The tables first, then the indexes, views and triggers, each as SQLite states it. */
  statements: string[];
  /** What the migrations wrote: the migrator's own tables and runyard's schema state. */
  rows: Array<{ table: string; rows: Record<string, unknown>[] }>;
  /** The newest migration, for the log line. */
  newest: string;
  /**
   * Whether SQLite's own `sqlite_sequence` table is there: a migration made a table with
   * AUTOINCREMENT once, and SQLite keeps the table after that one was dropped.
   */
  sequence: boolean;
}

let made: MadeSchema | undefined;

/** Whether the database holds nothing yet: no table, no index, no view. */
export async function isEmptySqlite(db: Kysely<unknown>): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`select count(*) as n from sqlite_master`.execute(db);
  return Number(rows[0]?.n ?? 0) === 0;
}

/**
 * Makes the empty database `db` as the last new one was made, if one was; false where none was
 * (the caller migrates it, then `rememberSchema`).
 */
export async function copySchema(db: Kysely<unknown>, logger?: Logger): Promise<boolean> {
  const schema = made;
  if (!schema) return false;
  const now = new Date().toISOString();
  await db.transaction().execute(async (trx) => {
    // SQLite makes `sqlite_sequence` itself, for the first table with AUTOINCREMENT, and only then.
    if (schema.sequence) {
      await sql`create table runyard_sequence_maker (id integer primary key autoincrement)`.execute(trx);
      await sql`drop table runyard_sequence_maker`.execute(trx);
    }
    for (const statement of schema.statements) await sql.raw(statement).execute(trx);
    for (const { table, rows } of schema.rows)
      await (trx as Kysely<Record<string, Record<string, unknown>>>).insertInto(table).values(rows).execute();
    // When this database was migrated and finished is now, as for one migrated step by step.
    await sql`update runyard_migration set timestamp = ${now}`.execute(trx);
    await sql`update runyard_migration_finished set finished_at = ${now}`.execute(trx);
  });
  logger?.info({ migration: schema.newest }, "store made at the newest migration's schema");
  return true;
}

/** Keeps what the migrations made of a database that was empty, for `copySchema`. */
export async function rememberSchema(db: Kysely<unknown>): Promise<void> {
  const { rows: objects } = await sql<{ type: string; name: string; sql: string }>`
    select type, name, sql from sqlite_master
    where sql is not null and substr(name, 1, 7) <> 'sqlite_'
    order by case type when 'table' then 0 when 'index' then 1 when 'view' then 2 else 3 end, rowid`.execute(
    db,
  );
  const rows: MadeSchema["rows"] = [];
  for (const { type, name } of objects) {
    if (type !== "table") continue;
    const found = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(db);
    if (found.rows.length > 0) rows.push({ table: name, rows: found.rows });
  }
  const { rows: newest } = await sql<{ name: string }>`
    select name from runyard_migration order by name desc limit 1`.execute(db);
  const { rows: sequence } = await sql<{ n: number }>`
    select count(*) as n from sqlite_master where name = 'sqlite_sequence'`.execute(db);
  made = {
    statements: objects.map((object) => object.sql),
    rows,
    newest: newest[0]?.name ?? "",
    sequence: Number(sequence[0]?.n ?? 0) > 0,
  };
}

/** What a later new database would be made from; undefined until one was migrated (tests). */
export function madeSchema(): MadeSchema | undefined {
  return made;
}
