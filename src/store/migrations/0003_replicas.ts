import type { Kysely } from "kysely";
import { columnTypes, isPostgres } from "./column-types.js";

/**
 * Several server replicas on one database (docs/scale.md): each replica heartbeats its row in
 * `replicas`; a run's engine lives on the replica named in `runs.replica_id` until that replica
 * stops heartbeating and another adopts the run; a runner's reports on a job whose engine lives
 * on another replica wait in `job_reports` until that engine applies them, in `id` order.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("replicas")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("hostname", text, (col) => col.notNull())
    .addColumn("url", text)
    .addColumn("version", text, (col) => col.notNull())
    .addColumn("started_at", text, (col) => col.notNull())
    .addColumn("seen_at", text, (col) => col.notNull())
    .execute();
  await db.schema.alterTable("runs").addColumn("replica_id", text).execute();
  await db.schema.alterTable("runs").addColumn("cancel_requested_at", text).execute();
  await db.schema.createIndex("runs_replica").on("runs").columns(["replica_id", "status"]).execute();
  await db.schema.alterTable("runners").addColumn("replica_id", text).execute();
  await createJobReports(db);
}

/** `job_reports` as this migration makes it; 0013 drops it, and its `down` makes it again. */
export async function createJobReports(db: Kysely<unknown>): Promise<void> {
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

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("job_reports").execute();
  await db.schema.alterTable("runners").dropColumn("replica_id").execute();
  await db.schema.dropIndex("runs_replica").execute();
  await db.schema.alterTable("runs").dropColumn("cancel_requested_at").execute();
  await db.schema.alterTable("runs").dropColumn("replica_id").execute();
  await db.schema.dropTable("replicas").execute();
}
