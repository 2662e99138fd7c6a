import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * `runs.retry_of`: the run a retry (or a one-step run) carries on from; null for any other run.
 * `runs.retry_from`: the step it ran from (a retry) or the one step it ran (`runs run-step`).
 * The index answers "which runs retried this one" for the run's page.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema.alterTable("runs").addColumn("retry_of", text).execute();
  await db.schema.alterTable("runs").addColumn("retry_from", text).execute();
  await db.schema.createIndex("runs_retry_of").on("runs").column("retry_of").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("runs_retry_of").execute();
  await db.schema.alterTable("runs").dropColumn("retry_from").execute();
  await db.schema.alterTable("runs").dropColumn("retry_of").execute();
}
