import { type Kysely, sql } from "kysely";
import { createHooksByName } from "./0015_concurrency_and_hooks.js";
import { columnTypes } from "./column-types.js";

/**
 * Hook names are unique per tenant, as saved workflows' names are: a name another tenant uses
 * is free, and taking it tells nothing of that tenant.
 *
 * A hook's deliveries no longer go to its name (two tenants may share one) but to its `id`:
 * random for hooks made from now on, the name itself for hooks made before, so the URL a sender
 * was given (`/api/hooks/NAME`) keeps working. `hook_deliveries` is keyed by that id.
 *
 * Both tables are rebuilt (SQLite cannot change a primary key in place): new ones are made,
 * filled from the old, and take the old names.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("hooks_by_tenant")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("name", text, (col) => col.notNull())
    .addColumn("workflow", text, (col) => col.notNull())
    .addColumn("vars", text, (col) => col.notNull())
    .addColumn("secret", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("created_by", text)
    .execute();
  await sql`insert into hooks_by_tenant (id, tenant_id, name, workflow, vars, secret, created_at, created_by)
    select name, tenant_id, name, workflow, vars, secret, created_at, created_by from hooks`.execute(db);
  await db.schema
    .createTable("hook_deliveries_by_id")
    .addColumn("hook_id", text, (col) => col.notNull().references("hooks_by_tenant.id").onDelete("cascade"))
    .addColumn("delivery_id", text, (col) => col.notNull())
    .addColumn("run_id", text)
    .addColumn("received_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("hook_deliveries_by_id_pk", ["hook_id", "delivery_id"])
    .execute();
  await sql`insert into hook_deliveries_by_id (hook_id, delivery_id, run_id, received_at)
    select hook_name, delivery_id, run_id, received_at from hook_deliveries`.execute(db);
  await db.schema.dropTable("hook_deliveries").execute();
  await db.schema.dropTable("hooks").execute();
  await db.schema.alterTable("hooks_by_tenant").renameTo("hooks").execute();
  await db.schema.alterTable("hook_deliveries_by_id").renameTo("hook_deliveries").execute();
  await db.schema
    .createIndex("hooks_tenant_name")
    .on("hooks")
    .columns(["tenant_id", "name"])
    .unique()
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Names were per tenant: going back keeps one hook per name, the oldest.
  await createHooksByName(db, "hooks_by_name", "hook_deliveries_by_name");
  await sql`insert into hooks_by_name (name, tenant_id, workflow, vars, secret, created_at, created_by)
    select name, tenant_id, workflow, vars, secret, created_at, created_by from hooks h
    where not exists (select 1 from hooks o where o.name = h.name and (o.created_at < h.created_at or (o.created_at = h.created_at and o.id < h.id)))`.execute(
    db,
  );
  await db.schema.dropTable("hook_deliveries").execute();
  await db.schema.dropTable("hooks").execute();
  await db.schema.alterTable("hooks_by_name").renameTo("hooks").execute();
  await db.schema.alterTable("hook_deliveries_by_name").renameTo("hook_deliveries").execute();
  await db.schema.createIndex("hooks_tenant_idx").on("hooks").columns(["tenant_id", "name"]).execute();
}
