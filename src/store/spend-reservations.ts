import { newId } from "../core/ids.js";
import { type AgentUsageRepo, agentUsageRepo } from "./agent-usage.js";
import { type BudgetsRepo, budgetsRepo } from "./budgets.js";
import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { SpendReservationsTable } from "./schema.js";

/** Spend a running agent turn holds of its tenant's and user's budgets. */
export type SpendReservation = SpendReservationsTable;

/** Whose budgets a reservation is counted against: the locks `reserve` holds. */
export interface SpendSubjects {
  tenantId?: string;
  userId?: string;
}

/** What `reserve`'s decision reads, all inside its transaction. */
export interface SpendView {
  agentUsage: AgentUsageRepo;
  budgets: Pick<BudgetsRepo, "get">;
  /** The reservations not yet released nor expired of a tenant or a user. */
  live(subject: SpendSubjects): Promise<SpendReservation[]>;
}

export interface NewSpendReservation {
  run_id: string;
  usd: number;
  /** How long it holds at most, should its turn's end never be seen (its server went away). */
  ttl_ms: number;
}

export interface SpendReservationsRepo {
  /**
   * Runs `decide` in one transaction that holds a lock per subject (PostgreSQL advisory locks;
   * SQLite runs one write transaction at a time), and stores the reservation it asks for: two
   * turns of the same tenant or user deciding at the same moment decide one after the other,
   * the second seeing what the first took. Expired reservations are dropped first.
   */
  reserve<T>(
    subjects: SpendSubjects,
    decide: (view: SpendView) => Promise<{ answer: T; reservation?: NewSpendReservation }>,
  ): Promise<{ answer: T; reservation?: SpendReservation }>;
  /** Gives a reservation back (its turn ended); false when it was gone. */
  release(id: string): Promise<boolean>;
}

export function spendReservationsRepo(ctx: StoreContext): SpendReservationsRepo {
  return {
    async reserve(subjects, decide) {
      return ctx.db.transaction().execute(async (trx) => {
        if (subjects.tenantId !== undefined)
          await ctx.dialect.lockUntilCommit(trx, `spend:tenant:${subjects.tenantId}`);
        if (subjects.userId !== undefined)
          await ctx.dialect.lockUntilCommit(trx, `spend:user:${subjects.userId}`);
        const now = isoTime(ctx.now());
        await trx.deleteFrom("spend_reservations").where("expires_at", "<=", now).execute();
        const inner: StoreContext = { ...ctx, db: trx };
        const view: SpendView = {
          agentUsage: agentUsageRepo(inner),
          budgets: budgetsRepo(inner),
          async live(subject) {
            let query = trx.selectFrom("spend_reservations").selectAll().where("expires_at", ">", now);
            if (subject.tenantId !== undefined) query = query.where("tenant_id", "=", subject.tenantId);
            if (subject.userId !== undefined) query = query.where("user_id", "=", subject.userId);
            return (await query.orderBy("created_at").execute()).map((row) => ({
              ...row,
              usd: Number(row.usd),
              after_seq: Number(row.after_seq),
            }));
          },
        };
        const { answer, reservation } = await decide(view);
        if (!reservation) return { answer };
        const spentSoFar = await trx
          .selectFrom("agent_usage")
          .select((eb) => eb.fn.max("seq").as("seq"))
          .where("run_id", "=", reservation.run_id)
          .executeTakeFirst();
        const row: SpendReservation = {
          id: newId("hold"),
          run_id: reservation.run_id,
          tenant_id: subjects.tenantId ?? "",
          user_id: subjects.userId ?? "",
          usd: reservation.usd,
          created_at: now,
          expires_at: isoTime(new Date(ctx.now().getTime() + reservation.ttl_ms)),
          after_seq: Number(spentSoFar?.seq ?? 0),
        };
        await trx.insertInto("spend_reservations").values(row).execute();
        return { answer, reservation: row };
      });
    },
    async release(id) {
      const result = await ctx.db.deleteFrom("spend_reservations").where("id", "=", id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
  };
}
