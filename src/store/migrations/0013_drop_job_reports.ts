import type { Kysely } from "kysely";
import { columnTypes, isPostgres } from "./column-types.js";

/**
 * The store is the only mailbox between replicas: the replica a runner is connected to stores
 * its batches in the run's events and its result on the job row, so reports no longer wait in
 * `job_reports` for the engine of their run. A report left there by an older server is dropped
 * with the table: upgrade with no run in flight (docs/scale.md).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("job_reports").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("job_reports")
    .addColumn("id", isPostgres(db) ? "bigserial" : "integer", (col) =>
      isPostgres(db) ? col.primaryKey() : col.primaryKey().autoIncrement(),
    )
    .addColumn("job_id", text, (col) => col.notNull().references("jobs.id").onDelete("cascade"))
    .addColumn("run_id", text, (col) => col.notNull().references("runs.id").onDelete("cascade"))
    .addColumn("kind", text, (col) => col.notNull())
    .addColumn("batch", "bigint", (col) => col.notNull().defaultTo(0))
    .addColumn("runner_id", text)
    .addColumn("body", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addUniqueConstraint("job_reports_once", ["job_id", "kind", "batch"])
    .execute();
  await db.schema.createIndex("job_reports_run").on("job_reports").columns(["run_id", "id"]).execute();
}
