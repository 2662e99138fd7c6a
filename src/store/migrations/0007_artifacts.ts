import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Run artifacts (`GET /api/runs/:id/artifacts`): the diff, transcript, test output and logs of a
 * run, in the database rather than a home folder, because several server replicas share only the
 * database and a runner uploads to whichever one it reaches. `content` is UTF-8 text sealed with
 * the store's key; `size` and `sha256` are of its UTF-8 bytes. One name per run: an upload under
 * a name the run has replaces it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("artifacts")
    .addColumn("run_id", text, (col) => col.notNull().references("runs.id").onDelete("cascade"))
    .addColumn("name", text, (col) => col.notNull())
    .addColumn("job_id", text)
    .addColumn("size", "bigint", (col) => col.notNull())
    .addColumn("content_type", text, (col) => col.notNull())
    .addColumn("content", text, (col) => col.notNull())
    .addColumn("sha256", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("artifacts_pk", ["run_id", "name"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("artifacts").execute();
}
