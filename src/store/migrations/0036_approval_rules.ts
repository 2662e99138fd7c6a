import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Approvals that take a form and several approvers.
 *
 * `approvals` gains what the step asks beyond a yes: `required` (distinct approvers who must
 * approve), `self_approval` (0: the run's submitter may not answer), `not_before` (no answer is
 * taken before it), `form` (JSON list of the inputs the approver fills in) and, once approved,
 * `inputs` (JSON of the values, which the step exports) and `approved_by` (JSON list, in order).
 *
 * `approval_votes`: each approver's answer, one row per run, step and approver: the primary key
 * is what makes an approver count once, whichever replica took the answer.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .alterTable("approvals")
    .addColumn("required", "integer", (col) => col.notNull().defaultTo(1))
    .execute();
  await db.schema
    .alterTable("approvals")
    .addColumn("self_approval", "integer", (col) => col.notNull().defaultTo(1))
    .execute();
  for (const column of ["not_before", "form", "inputs", "approved_by"]) {
    await db.schema.alterTable("approvals").addColumn(column, text).execute();
  }
  await db.schema
    .createTable("approval_votes")
    .addColumn("run_id", text, (col) => col.notNull())
    .addColumn("step", text, (col) => col.notNull())
    .addColumn("voter", text, (col) => col.notNull())
    .addColumn("decision", text, (col) => col.notNull())
    .addColumn("inputs", text)
    .addColumn("comment", text)
    .addColumn("answered_at", text, (col) => col.notNull())
    .addPrimaryKeyConstraint("approval_votes_pk", ["run_id", "step", "voter"])
    .addForeignKeyConstraint(
      "approval_votes_approval_fk",
      ["run_id", "step"],
      "approvals",
      ["run_id", "step"],
      (fk) => fk.onDelete("cascade"),
    )
    .execute();
  // Every wait stored before asked for one approval from anyone listed, answerable at once.
  await sql`update approvals set required = 1, self_approval = 1`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("approval_votes").execute();
  for (const column of ["approved_by", "inputs", "form", "not_before", "self_approval", "required"]) {
    await db.schema.alterTable("approvals").dropColumn(column).execute();
  }
}
