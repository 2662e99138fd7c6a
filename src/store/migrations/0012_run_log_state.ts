import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * A run's stored log cap and where the run stands against it, kept on the run so whichever
 * replica appends the run's events honours it (`appendRunEvents`): `log_max_bytes` (null until
 * the replica carrying the run records it; 0 for no cap), `log_rolling` (1: keep the newest
 * output, as a bot's log does), `log_bytes` (output bytes stored), and `log_cut` (null while
 * output is stored; once the cap is reached, a JSON array of `{step, host, bytes}` not stored
 * and not yet said in a notice). Runs stored before start with no cap recorded.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("runs").addColumn("log_max_bytes", "bigint").execute();
  await db.schema
    .alterTable("runs")
    .addColumn("log_rolling", "integer", (col) => col.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable("runs")
    .addColumn("log_bytes", "bigint", (col) => col.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable("runs").addColumn("log_cut", columnTypes(db).text).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ["log_cut", "log_bytes", "log_rolling", "log_max_bytes"]) {
    await db.schema.alterTable("runs").dropColumn(column).execute();
  }
}
