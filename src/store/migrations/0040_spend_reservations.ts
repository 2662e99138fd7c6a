import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Spend held by agent turns that are running (docs/agents.md "Spend budgets"): a turn holds a
 * part of what is left of its tenant's and user's budgets as it starts and gives back what it did
 * not spend as it ends, so turns starting together cannot each be given the whole remainder.
 * `tenant_id` and `user_id` are `""` for none, as in `agent_usage`; `expires_at` ends a hold
 * whose server went away before the turn's end was seen.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text, real } = columnTypes(db);
  await db.schema
    .createTable("spend_reservations")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("run_id", text, (col) => col.notNull())
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("user_id", text, (col) => col.notNull())
    .addColumn("usd", real, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("expires_at", text, (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex("spend_reservations_tenant_idx")
    .on("spend_reservations")
    .columns(["tenant_id", "expires_at"])
    .execute();
  await db.schema
    .createIndex("spend_reservations_user_idx")
    .on("spend_reservations")
    .columns(["user_id", "expires_at"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("spend_reservations").execute();
}
