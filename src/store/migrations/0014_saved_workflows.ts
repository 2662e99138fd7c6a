import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Saved workflows and their schedules (docs/workflows.md "Saved workflows", "Schedules").
 *
 * `saved_workflows`: one row per version of a tenant's named workflow (`tenant_id` is `""`
 * outside any tenant, as secrets have it); `workflow` is the YAML text, sealed like run specs.
 * `schedules`: one row per `schedule:` entry of a saved workflow's latest version; `last_tick_at`
 * is the newest tick handled, `next_tick_at` the next one due. `schedule_ticks`: one row per
 * schedule and tick time, inserted before the tick's run starts; its primary key is what makes a
 * tick fire once across replicas. Runs record what started them (`trigger`, and `trigger_ref`:
 * the schedule, hook or run behind it) and the saved workflow version they ran.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("saved_workflows")
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("name", text, (col) => col.notNull())
    .addColumn("version", "integer", (col) => col.notNull())
    .addColumn("workflow", text, (col) => col.notNull())
    .addColumn("file", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("created_by", text)
    .addColumn("unrestricted", "integer", (col) => col.notNull().defaultTo(0))
    .addPrimaryKeyConstraint("saved_workflows_pk", ["tenant_id", "name", "version"])
    .execute();

  await db.schema
    .createTable("schedules")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("workflow_name", text, (col) => col.notNull())
    .addColumn("position", "integer", (col) => col.notNull())
    .addColumn("workflow_version", "integer", (col) => col.notNull())
    .addColumn("cron", text, (col) => col.notNull())
    .addColumn("timezone", text, (col) => col.notNull())
    .addColumn("overlap", text, (col) => col.notNull())
    .addColumn("catch_up", text, (col) => col.notNull())
    .addColumn("armed_at", text, (col) => col.notNull())
    .addColumn("last_tick_at", text)
    .addColumn("next_tick_at", text)
    .addUniqueConstraint("schedules_workflow_position", ["tenant_id", "workflow_name", "position"])
    .execute();
  await db.schema.createIndex("schedules_next_tick").on("schedules").column("next_tick_at").execute();

  await db.schema
    .createTable("schedule_ticks")
    .addColumn("schedule_id", text, (col) => col.notNull())
    .addColumn("tick_at", text, (col) => col.notNull())
    .addColumn("outcome", text, (col) => col.notNull())
    .addColumn("run_id", text)
    .addColumn("detail", text)
    .addColumn("ticks", "integer", (col) => col.notNull().defaultTo(1))
    .addColumn("created_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("schedule_ticks_pk", ["schedule_id", "tick_at"])
    .execute();

  await db.schema
    .alterTable("runs")
    .addColumn("trigger", text, (col) => col.notNull().defaultTo("api"))
    .execute();
  await db.schema.alterTable("runs").addColumn("trigger_ref", text).execute();
  await db.schema.alterTable("runs").addColumn("saved_workflow", text).execute();
  await db.schema.alterTable("runs").addColumn("saved_version", "integer").execute();
  await db.schema.createIndex("runs_trigger_ref").on("runs").columns(["trigger_ref", "status"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("runs_trigger_ref").execute();
  for (const column of ["saved_version", "saved_workflow", "trigger_ref", "trigger"]) {
    await db.schema.alterTable("runs").dropColumn(column).execute();
  }
  await db.schema.dropTable("schedule_ticks").execute();
  await db.schema.dropTable("schedules").execute();
  await db.schema.dropTable("saved_workflows").execute();
}
