import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Approval steps waiting for an answer, one row per run and step: who may answer (JSON list),
 * until when, and once answered, the decision, who gave it, their comment and when. The row
 * outlives a server restart, and an answer given to any replica is stored here for the engine.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("approvals")
    .addColumn("run_id", text, (col) => col.notNull().references("runs.id").onDelete("cascade"))
    .addColumn("step", text, (col) => col.notNull())
    .addColumn("message", text, (col) => col.notNull())
    .addColumn("approvers", text, (col) => col.notNull())
    .addColumn("deadline", text, (col) => col.notNull())
    .addColumn("decision", text)
    .addColumn("answered_by", text)
    .addColumn("comment", text)
    .addColumn("answered_at", text)
    .addColumn("created_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("approvals_pk", ["run_id", "step"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("approvals").execute();
}
