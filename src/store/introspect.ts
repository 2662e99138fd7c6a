import { type Kysely, sql } from "kysely";

/*
 * What a database holds, read from its catalog (`sqlite_master` and `pragma_table_info` on
 * SQLite, `information_schema` on PostgreSQL), so `db copy` and `db status` follow whatever the
 * migrations made instead of a list kept by hand.
 */

export type DialectName = "sqlite" | "postgres";

/** How a column's values travel between the dialects: node-postgres gives `bigint` as text. */
export type ColumnKind = "integer" | "real" | "text" | "other";

export interface ColumnInfo {
  name: string;
  kind: ColumnKind;
  /** Position in the primary key, from 1; 0 when the column is not part of it. */
  primaryKey: number;
}

/** The tables of the database (SQLite's own `sqlite_*` tables left out), by name. */
export async function listTables(db: Kysely<unknown>, dialect: DialectName): Promise<string[]> {
  const { rows } =
    dialect === "sqlite"
      ? await sql<{ name: string }>`
          select name from sqlite_master where type = 'table' and substr(name, 1, 7) <> 'sqlite_'
          order by name`.execute(db)
      : await sql<{ name: string }>`
          select table_name as name from information_schema.tables
          where table_schema = current_schema() and table_type = 'BASE TABLE'
          order by table_name`.execute(db);
  return rows.map((row) => row.name);
}

/** A table's columns in their declared order; empty when the table does not exist. */
export async function listColumns(
  db: Kysely<unknown>,
  dialect: DialectName,
  table: string,
): Promise<ColumnInfo[]> {
  if (dialect === "sqlite") {
    const { rows } = await sql<{ name: string; type: string; pk: number }>`
      select name, type, pk from pragma_table_info(${table}) order by cid`.execute(db);
    return rows.map((row) => ({ name: row.name, kind: columnKind(row.type), primaryKey: Number(row.pk) }));
  }
  const { rows } = await sql<{ name: string; type: string; pk: number | null }>`
    select c.column_name as name, c.data_type as type, k.ordinal_position as pk
    from information_schema.columns c
    left join information_schema.table_constraints t
      on t.table_schema = c.table_schema and t.table_name = c.table_name and t.constraint_type = 'PRIMARY KEY'
    left join information_schema.key_column_usage k
      on k.constraint_schema = t.constraint_schema and k.constraint_name = t.constraint_name
      and k.table_name = c.table_name and k.column_name = c.column_name
    where c.table_schema = current_schema() and c.table_name = ${table}
    order by c.ordinal_position`.execute(db);
  return rows.map((row) => ({ name: row.name, kind: columnKind(row.type), primaryKey: Number(row.pk ?? 0) }));
}

/** SQLite's declared type or PostgreSQL's `data_type`, by the affinity rules SQLite uses. */
export function columnKind(declared: string): ColumnKind {
  const type = declared.toLowerCase();
  if (type.includes("int")) return "integer";
  if (/real|floa|doub|numeric|decimal/.test(type)) return "real";
  if (/char|clob|text/.test(type)) return "text";
  return "other";
}

/** How many rows a table holds. */
export async function countRows(db: Kysely<unknown>, table: string): Promise<number> {
  const { rows } = await sql<{ count: number | string }>`
    select count(*) as count from ${sql.table(table)}`.execute(db);
  return Number(rows[0]?.count ?? 0);
}
