import type { Kysely } from "kysely";

/**
 * `spend_reservations.after_seq`: the highest `agent_usage` seq of the hold's run when the hold
 * was made. What the run spends while its turns hold counts against the holds (spent, not also
 * held); that spend was picked by time before (`at >= created_at`), and the run's earlier spend
 * counted as the new hold's own when both fell in one millisecond, or when the runner's clock that
 * dated the usage was ahead of the server's: a turn was given what its own run had already spent.
 * Holds made before it count all their run's usage as theirs (0): they hold less, never more, and
 * end with their turns.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("spend_reservations")
    .addColumn("after_seq", "integer", (col) => col.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("spend_reservations").dropColumn("after_seq").execute();
}
