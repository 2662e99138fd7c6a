import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Concurrency groups and signed webhooks.
 *
 * `runs.concurrency_group`: the group a run takes turns in (its workflow's `concurrency.group`,
 * expanded at submit); null for runs in none. Queued runs of a group start in submit order.
 *
 * `concurrency_slots`: one row per tenant and group, naming the run that holds it. A slot whose
 * run has ended (any final status, set by whichever replica ends or reconciles the run) is free,
 * so a replica that dies holding one blocks the group only until its run is adopted or
 * interrupted. `tenant_id` is `""` outside any tenant, so the key holds no null.
 *
 * `hooks`: a signed webhook that starts a saved workflow. Names are unique across the server (the
 * delivery URL is `/api/hooks/NAME` and names no tenant); `secret` is sealed with the store's key;
 * `vars` is JSON `{NAME: "$.path"}`. `hook_deliveries`: one row per hook and `X-GitHub-Delivery`,
 * so a delivery sent again starts no second run.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema.alterTable("runs").addColumn("concurrency_group", text).execute();
  await db.schema
    .createIndex("runs_concurrency_idx")
    .on("runs")
    .columns(["concurrency_group", "status", "created_at"])
    .execute();
  await db.schema
    .createTable("concurrency_slots")
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("group_name", text, (col) => col.notNull())
    .addColumn("run_id", text, (col) => col.notNull().references("runs.id").onDelete("cascade"))
    .addColumn("taken_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("concurrency_slots_pk", ["tenant_id", "group_name"])
    .execute();
  await db.schema.createIndex("concurrency_slots_run_idx").on("concurrency_slots").column("run_id").execute();

  await createHooksByName(db, "hooks", "hook_deliveries");
  await db.schema.createIndex("hooks_tenant_idx").on("hooks").columns(["tenant_id", "name"]).execute();
}

/** `hooks` and `hook_deliveries` keyed by name, as this migration makes them; 0020's `down` makes them again. */
export async function createHooksByName(
  db: Kysely<unknown>,
  hooks: string,
  deliveries: string,
): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable(hooks)
    .addColumn("name", text, (col) => col.primaryKey())
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("workflow", text, (col) => col.notNull())
    .addColumn("vars", text, (col) => col.notNull())
    .addColumn("secret", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("created_by", text)
    .execute();
  await db.schema
    .createTable(deliveries)
    .addColumn("hook_name", text, (col) => col.notNull().references(`${hooks}.name`).onDelete("cascade"))
    .addColumn("delivery_id", text, (col) => col.notNull())
    .addColumn("run_id", text)
    .addColumn("received_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint(`${deliveries}_pk`, ["hook_name", "delivery_id"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("hook_deliveries").execute();
  await db.schema.dropTable("hooks").execute();
  await db.schema.dropTable("concurrency_slots").execute();
  await db.schema.dropIndex("runs_concurrency_idx").execute();
  await db.schema.alterTable("runs").dropColumn("concurrency_group").execute();
}
