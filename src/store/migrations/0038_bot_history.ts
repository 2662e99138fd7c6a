import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Bots' resource history and alerts (docs/bots.md "Resource history and alerts").
 *
 * `bot_samples`: what a bot's container used, at three resolutions (`resolution` in seconds): the
 * runner's 5 s samples for an hour, 1-minute rows for a day, 10-minute rows for a week. The server
 * makes the coarser rows from the finer ones and deletes each past its age. Byte counts are
 * `real` (8 bytes on both dialects): a memory limit passes a 4-byte integer.
 *
 * `bot_alerts`: one row per alert episode of a bot; `ended_at` is null while it lasts, and at
 * most one episode of a kind is open per bot (a partial unique index: replicas racing to open the
 * same episode open it once, so its notify is sent once).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text, real } = columnTypes(db);
  await db.schema
    .createTable("bot_samples")
    .addColumn("bot_id", text, (col) => col.notNull())
    .addColumn("tenant_id", text)
    .addColumn("resolution", "integer", (col) => col.notNull())
    .addColumn("at", text, (col) => col.notNull())
    .addColumn("cpu_percent", real, (col) => col.notNull())
    .addColumn("memory_bytes", real, (col) => col.notNull())
    .addColumn("memory_limit_bytes", real)
    .addColumn("net_rx_bytes", real, (col) => col.notNull().defaultTo(0))
    .addColumn("net_tx_bytes", real, (col) => col.notNull().defaultTo(0))
    .addColumn("pids", "integer", (col) => col.notNull().defaultTo(0))
    .addColumn("restarts", "integer", (col) => col.notNull().defaultTo(0))
    .addPrimaryKeyConstraint("bot_samples_pk", ["bot_id", "resolution", "at"])
    .execute();
  // The pruning deletes by resolution and age across bots.
  await db.schema.createIndex("bot_samples_age").on("bot_samples").columns(["resolution", "at"]).execute();
  await db.schema
    .createTable("bot_alerts")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("bot_id", text, (col) => col.notNull())
    .addColumn("tenant_id", text)
    .addColumn("kind", text, (col) => col.notNull())
    .addColumn("message", text, (col) => col.notNull())
    .addColumn("started_at", text, (col) => col.notNull())
    .addColumn("ended_at", text)
    .addColumn("notified_at", text)
    .addColumn("notify_error", text)
    .execute();
  await sql`create unique index bot_alerts_open on bot_alerts (bot_id, kind) where ended_at is null`.execute(
    db,
  );
  await db.schema.createIndex("bot_alerts_bot").on("bot_alerts").columns(["bot_id", "started_at"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("bot_alerts").execute();
  await db.schema.dropTable("bot_samples").execute();
}
