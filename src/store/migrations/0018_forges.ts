import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Code forges whose issues and reviews start agent tasks (docs/forges.md): a forge per repo with
 * its API token and webhook secret (both sealed), the deliveries it received (once each), and
 * which issue and pull request each of its runs serves.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("forges")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("kind", text, (col) => col.notNull())
    .addColumn("repo", text, (col) => col.notNull())
    .addColumn("api_url", text, (col) => col.notNull())
    .addColumn("token", text, (col) => col.notNull())
    .addColumn("webhook_secret", text, (col) => col.notNull())
    .addColumn("label", text, (col) => col.notNull())
    .addColumn("agent", text, (col) => col.notNull())
    .addColumn("settings", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("created_by", text)
    .execute();
  await db.schema
    .createTable("forge_deliveries")
    .addColumn("forge_id", text, (col) => col.notNull().references("forges.id").onDelete("cascade"))
    .addColumn("delivery_id", text, (col) => col.notNull())
    .addColumn("event", text, (col) => col.notNull())
    .addColumn("outcome", text, (col) => col.notNull())
    .addColumn("run_id", text)
    .addColumn("received_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("forge_deliveries_pk", ["forge_id", "delivery_id"])
    .execute();
  await db.schema
    .createTable("forge_runs")
    .addColumn("run_id", text, (col) => col.primaryKey())
    .addColumn("forge_id", text, (col) => col.notNull().references("forges.id").onDelete("cascade"))
    .addColumn("issue_number", "integer", (col) => col.notNull())
    .addColumn("pull_number", "integer")
    .addColumn("reported", "integer", (col) => col.notNull().defaultTo(0))
    .addColumn("created_at", text, (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex("forge_runs_issue_idx")
    .on("forge_runs")
    .columns(["forge_id", "issue_number"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("forge_runs").execute();
  await db.schema.dropTable("forge_deliveries").execute();
  await db.schema.dropTable("forges").execute();
}
