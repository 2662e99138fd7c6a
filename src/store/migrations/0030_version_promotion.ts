import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Who a triggered run acts as (docs/security.md "Who a triggered run acts as").
 *
 * `saved_workflows.promoted_at` / `promoted_by`: when, and by whom, a version was made the one
 * its triggers (hooks, schedules) run; null while it waits for promotion. The live version of a
 * name is its highest promoted one. Every version stored before this migration ran was what a
 * trigger could run, so each counts as promoted by its saver at its save.
 *
 * `schedules.owner`: whose trigger the schedule is (the token or user id that promoted the
 * version its entries come from); its runs are triggered by them. Existing schedules are their
 * version's saver's, as they ran before.
 *
 * `runs.authored_by`: who wrote what the run runs (a saved version's saver, the submitter of a
 * text, the first run's author for a re-run); `created_by` stays who triggered it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema.alterTable("saved_workflows").addColumn("promoted_at", text).execute();
  await db.schema.alterTable("saved_workflows").addColumn("promoted_by", text).execute();
  await sql`update saved_workflows set promoted_at = created_at, promoted_by = created_by`.execute(db);
  await db.schema.alterTable("schedules").addColumn("owner", text).execute();
  await sql`update schedules set owner = (select s.created_by from saved_workflows s
    where s.tenant_id = schedules.tenant_id and s.name = schedules.workflow_name
    and s.version = schedules.workflow_version)`.execute(db);
  await db.schema.alterTable("runs").addColumn("authored_by", text).execute();
  await sql`update runs set authored_by = created_by`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("runs").dropColumn("authored_by").execute();
  await db.schema.alterTable("schedules").dropColumn("owner").execute();
  await db.schema.alterTable("saved_workflows").dropColumn("promoted_by").execute();
  await db.schema.alterTable("saved_workflows").dropColumn("promoted_at").execute();
}
