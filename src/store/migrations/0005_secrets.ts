import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Per-tenant secrets (`runyard secret set`): a value sealed with the store's key, named like an
 * environment variable. `tenant_id` is `""` for the secrets outside any tenant, so the primary
 * key holds no null and means the same on SQLite and PostgreSQL (tenant ids are never empty).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("secrets")
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("name", text, (col) => col.notNull())
    .addColumn("value", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("updated_at", text, (col) => col.notNull())
    .addColumn("updated_by", text)
    .addPrimaryKeyConstraint("secrets_pk", ["tenant_id", "name"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("secrets").execute();
}
