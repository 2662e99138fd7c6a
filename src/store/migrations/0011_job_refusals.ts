import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Jobs a runner refused (it lacks the kind's handler or what the job needs): `refusals` lists
 * each refusal as JSON (`[{runner_id, reason}]`), and no runner claims the job before
 * `not_before`, the growing back-off after the last refusal. Jobs stored before had neither.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("jobs").addColumn("refusals", columnTypes(db).text).execute();
  await db.schema.alterTable("jobs").addColumn("not_before", columnTypes(db).text).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ["not_before", "refusals"]) {
    await db.schema.alterTable("jobs").dropColumn(column).execute();
  }
}
