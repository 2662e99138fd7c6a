import type { Kysely } from "kysely";
import { createJobReports } from "./0003_replicas.js";

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
  await createJobReports(db);
}
