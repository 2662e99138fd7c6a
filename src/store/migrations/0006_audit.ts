import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * The audit log (`GET /api/audit`, `runyard audit`): who did what to which object, from where,
 * and whether it worked. `details` is JSON and never holds a password, token secret or secret
 * value. Read newest first, by tenant, action or time.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("audit_events")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("at", text, (col) => col.notNull())
    .addColumn("actor_kind", text)
    .addColumn("actor_user_id", text)
    .addColumn("actor_token_id", text)
    .addColumn("actor_username", text)
    .addColumn("tenant_id", text)
    .addColumn("address", text)
    .addColumn("action", text, (col) => col.notNull())
    .addColumn("target", text)
    .addColumn("outcome", text, (col) => col.notNull())
    .addColumn("details", text, (col) => col.notNull())
    .execute();
  await db.schema.createIndex("audit_events_at").on("audit_events").columns(["at", "id"]).execute();
  await db.schema
    .createIndex("audit_events_tenant_at")
    .on("audit_events")
    .columns(["tenant_id", "at", "id"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("audit_events").execute();
}
