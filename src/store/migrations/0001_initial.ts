import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/** Runs, their event logs, jobs for runners, runners and tokens. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text, real } = columnTypes(db);
  await db.schema
    .createTable("runs")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("kind", text, (col) => col.notNull())
    .addColumn("name", text, (col) => col.notNull())
    .addColumn("status", text, (col) => col.notNull())
    .addColumn("tenant_id", text)
    .addColumn("created_by", text)
    .addColumn("spec", text, (col) => col.notNull())
    .addColumn("vars", text, (col) => col.notNull())
    .addColumn("steps", text, (col) => col.notNull())
    .addColumn("error", text)
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("started_at", text)
    .addColumn("finished_at", text)
    .addColumn("last_seq", "bigint", (col) => col.notNull().defaultTo(0))
    .addColumn("last_notify_error", text)
    .execute();
  await db.schema.createIndex("runs_created_idx").on("runs").columns(["created_at", "id"]).execute();
  await db.schema.createIndex("runs_status_idx").on("runs").columns(["status", "created_at"]).execute();
  await db.schema.createIndex("runs_tenant_idx").on("runs").columns(["tenant_id", "created_at"]).execute();

  await db.schema
    .createTable("run_events")
    .addColumn("run_id", text, (col) => col.notNull().references("runs.id").onDelete("cascade"))
    .addColumn("seq", "bigint", (col) => col.notNull())
    .addColumn("type", text, (col) => col.notNull())
    .addColumn("ts", text, (col) => col.notNull())
    .addColumn("data", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("run_events_pk", ["run_id", "seq"])
    .execute();

  await db.schema
    .createTable("jobs")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("run_id", text, (col) => col.notNull().references("runs.id").onDelete("cascade"))
    .addColumn("type", text, (col) => col.notNull())
    .addColumn("status", text, (col) => col.notNull())
    .addColumn("req_group", text)
    .addColumn("req_tenant_id", text)
    .addColumn("req_labels", text, (col) => col.notNull())
    .addColumn("payload", text, (col) => col.notNull())
    .addColumn("result", text)
    .addColumn("runner_id", text)
    .addColumn("lease_expires_at", text)
    .addColumn("last_event_seq", "bigint", (col) => col.notNull().defaultTo(0))
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("updated_at", text, (col) => col.notNull())
    .execute();
  await db.schema.createIndex("jobs_queue_idx").on("jobs").columns(["status", "created_at", "id"]).execute();
  await db.schema.createIndex("jobs_runner_idx").on("jobs").columns(["runner_id", "status"]).execute();
  await db.schema.createIndex("jobs_run_idx").on("jobs").column("run_id").execute();

  await db.schema
    .createTable("job_labels")
    .addColumn("job_id", text, (col) => col.notNull().references("jobs.id").onDelete("cascade"))
    .addColumn("label", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("job_labels_pk", ["job_id", "label"])
    .execute();

  await db.schema
    .createTable("runners")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("group_name", text, (col) => col.notNull())
    .addColumn("labels", text, (col) => col.notNull())
    .addColumn("mode", text, (col) => col.notNull())
    .addColumn("capacity", "integer", (col) => col.notNull())
    .addColumn("cpus", real)
    .addColumn("memory", text)
    .addColumn("hostname", text, (col) => col.notNull())
    .addColumn("tenant_id", text)
    .addColumn("status", text, (col) => col.notNull())
    .addColumn("connected_at", text)
    .addColumn("last_heartbeat_at", text)
    .addColumn("version", text)
    .execute();

  await db.schema
    .createTable("tokens")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("kind", text, (col) => col.notNull())
    .addColumn("name", text, (col) => col.notNull())
    .addColumn("group_name", text)
    .addColumn("tenant_id", text)
    .addColumn("secret_hash", text, (col) => col.notNull().unique())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("last_used_at", text)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["tokens", "runners", "job_labels", "jobs", "run_events", "runs"]) {
    await db.schema.dropTable(table).execute();
  }
}
