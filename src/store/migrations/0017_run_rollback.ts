import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * How a failed workflow run's rollbacks went, kept on its record as `run.finished` tells it:
 * `rolled_back` 1 when every rollback ran and succeeded, `rollback_failed` the name of the
 * rollback step that failed (`rollback: deploy`). Runs stored before read 0 and null.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .alterTable("runs")
    .addColumn("rolled_back", "integer", (col) => col.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable("runs").addColumn("rollback_failed", text).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("runs").dropColumn("rollback_failed").execute();
  await db.schema.alterTable("runs").dropColumn("rolled_back").execute();
}
