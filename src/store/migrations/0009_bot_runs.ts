import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * A bot's current life is a run of kind `bot` (`run_id`); what its container uses now comes
 * with the runner's heartbeats (`memory_bytes`, `cpu_percent` at `stats_at`). Memory is a
 * double: PostgreSQL's integer stops at 2 GiB.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text, real } = columnTypes(db);
  await db.schema.alterTable("bots").addColumn("run_id", text).execute();
  await db.schema.alterTable("bots").addColumn("memory_bytes", real).execute();
  await db.schema.alterTable("bots").addColumn("cpu_percent", real).execute();
  await db.schema.alterTable("bots").addColumn("stats_at", text).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ["stats_at", "cpu_percent", "memory_bytes", "run_id"]) {
    await db.schema.alterTable("bots").dropColumn(column).execute();
  }
}
