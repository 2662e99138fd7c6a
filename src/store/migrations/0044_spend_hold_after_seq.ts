import { type Kysely, sql } from "kysely";

/**
 * `spend_reservations.after_seq`: the highest `agent_usage` seq of the hold's run when the hold
 * was made. What the run spends while its turns hold counts against the holds (spent, not also
 * held); that spend was picked by time before (`at >= created_at`), and the run's earlier spend
 * counted as the new hold's own when both fell in one millisecond, or when the runner's clock that
 * dated the usage was ahead of the server's: a turn was given what its own run had already spent.
 * A hold made before it gets the seq its time picked (the run's last usage dated before the hold),
 * so it holds what it held; the column is a bigint, as the seqs it is compared with.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("spend_reservations")
    .addColumn("after_seq", "bigint", (col) => col.notNull().defaultTo(0))
    .execute();
  await sql`update spend_reservations set after_seq = coalesce((
      select max(u.seq) from agent_usage u
      where u.run_id = spend_reservations.run_id and u.at < spend_reservations.created_at
    ), 0)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("spend_reservations").dropColumn("after_seq").execute();
}
