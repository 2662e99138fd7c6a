import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Bots' alert rules per tenant and the webhook rate limit shared by every replica
 * (docs/bots.md "Resource history and alerts" and "Inbound webhooks").
 *
 * `tenant_bot_alerts`: one row per tenant, set by its admin: the alert rules (JSON, as a bot's
 * `alerts`) every bot of the tenant is watched for unless the bot has its own of that kind, and
 * the `notify` URLs (JSON) told when the bot has none of its own.
 *
 * `bot_hook_hits`: webhook requests a bot took per whole second (`second`, seconds since 1970),
 * counted by whichever replica took them, so the limit holds across replicas. Rows older than a
 * minute are deleted as new ones come.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("tenant_bot_alerts")
    .addColumn("tenant_id", text, (col) => col.primaryKey())
    .addColumn("alerts", text, (col) => col.notNull())
    .addColumn("notify", text, (col) => col.notNull())
    .addColumn("updated_at", text, (col) => col.notNull())
    .addColumn("updated_by", text)
    .execute();
  await db.schema
    .createTable("bot_hook_hits")
    .addColumn("bot_id", text, (col) => col.notNull())
    .addColumn("second", "bigint", (col) => col.notNull())
    .addColumn("count", "integer", (col) => col.notNull())
    .addPrimaryKeyConstraint("bot_hook_hits_pk", ["bot_id", "second"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("bot_hook_hits").execute();
  await db.schema.dropTable("tenant_bot_alerts").execute();
}
