import { type Kysely, PostgresAdapter, type RawBuilder, sql } from "kysely";

/**
 * The column types whose spelling differs per dialect, so one migration serves both.
 * PostgreSQL text takes `collate "C"`: ids and ISO timestamps then sort byte by byte, as SQLite
 * sorts them, whatever locale the database was created with. PostgreSQL `real` is 4 bytes;
 * SQLite's is 8, which is PostgreSQL's `double precision`.
 */
/** True when the migration runs on PostgreSQL. */
export function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

export function columnTypes(db: Kysely<unknown>): {
  text: "text" | RawBuilder<unknown>;
  real: "real" | "double precision";
} {
  if (isPostgres(db)) {
    return { text: sql`text collate "C"`, real: "double precision" };
  }
  return { text: "text", real: "real" };
}
