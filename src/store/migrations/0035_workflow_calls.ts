import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * `runs.parent_run_id` / `parent_step`: a run a `workflow.call` step started, and that step; null
 * for every other run. One child per step of a run: the unique index makes a call resumed on
 * another replica (or after a restart) find the child it started instead of starting a second.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema.alterTable("runs").addColumn("parent_run_id", text).execute();
  await db.schema.alterTable("runs").addColumn("parent_step", text).execute();
  await db.schema
    .createIndex("runs_parent_step")
    .unique()
    .on("runs")
    .columns(["parent_run_id", "parent_step"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("runs_parent_step").execute();
  await db.schema.alterTable("runs").dropColumn("parent_step").execute();
  await db.schema.alterTable("runs").dropColumn("parent_run_id").execute();
}
