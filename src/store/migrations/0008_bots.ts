import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Bots: users' long-running programs in containers. `spec` (files, env with secrets, registry
 * credentials) and `last_logs` (the previous container's last lines) are sealed with the store's
 * key. `oom_killed` is 0 or 1: the schema keeps to column types both dialects share.
 *
 * A name is unique per tenant and owner among the bots that are not `removed`, so a removed
 * bot's name can be taken again while its row stays. The partial expression index works on
 * SQLite and PostgreSQL alike; `coalesce` makes "no tenant" one key (null never equals null).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("bots")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("tenant_id", text)
    .addColumn("owner", text, (col) => col.notNull())
    .addColumn("name", text, (col) => col.notNull())
    .addColumn("mode", text, (col) => col.notNull())
    .addColumn("spec", text, (col) => col.notNull())
    .addColumn("state", text, (col) => col.notNull())
    .addColumn("runner_id", text)
    .addColumn("container_id", text)
    .addColumn("image", text)
    .addColumn("restarts", "integer", (col) => col.notNull().defaultTo(0))
    .addColumn("restart_policy", text, (col) => col.notNull().defaultTo("no"))
    .addColumn("exit_code", "integer")
    .addColumn("oom_killed", "integer", (col) => col.notNull().defaultTo(0))
    .addColumn("last_logs", text)
    .addColumn("error", text)
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("updated_at", text, (col) => col.notNull())
    .addColumn("started_at", text)
    .addColumn("finished_at", text)
    .addColumn("expires_at", text, (col) => col.notNull())
    .execute();
  await sql`create unique index bots_live_name on bots (coalesce(tenant_id, ''), owner, name) where state <> 'removed'`.execute(
    db,
  );
  // The lifetime sweep reads running bots by expiry; the quota reads a user's bots by state.
  await db.schema.createIndex("bots_state_expires").on("bots").columns(["state", "expires_at"]).execute();
  await db.schema.createIndex("bots_owner").on("bots").columns(["owner", "state"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("bots").execute();
}
