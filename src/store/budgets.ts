import type { Selectable } from "kysely";
import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { BudgetsTable } from "./schema.js";

/** Whose spend a budget caps. */
export type BudgetScope = "tenant" | "user";

/** The dollar limits an admin set for a tenant or a user; null: no limit for that period. */
export type BudgetRecord = Omit<Selectable<BudgetsTable>, "platform_bound"> & {
  /** A platform admin's: a tenant's admin may lower it, never lift or clear it. */
  platform_bound: boolean;
};

export interface BudgetChange {
  usd_per_day: number | null;
  usd_per_month: number | null;
  updated_by: string | null;
  /** Absent: false. */
  platform_bound?: boolean;
}

/** The spend budgets set through the API, one per tenant and per user. */
export interface BudgetsRepo {
  get(scope: BudgetScope, subject: string): Promise<BudgetRecord | undefined>;
  /** Sets both limits (an insert or an update); answers what is stored. */
  set(scope: BudgetScope, subject: string, change: BudgetChange): Promise<BudgetRecord>;
  /** Removes it; false when there was none. */
  clear(scope: BudgetScope, subject: string): Promise<boolean>;
  list(): Promise<BudgetRecord[]>;
}

export function budgetsRepo(ctx: StoreContext): BudgetsRepo {
  return {
    async get(scope, subject) {
      const row = await ctx.db
        .selectFrom("budgets")
        .selectAll()
        .where("scope", "=", scope)
        .where("subject", "=", subject)
        .executeTakeFirst();
      return row && recordOf(row);
    },
    async set(scope, subject, change) {
      const record: BudgetRecord = {
        scope,
        subject,
        ...change,
        platform_bound: change.platform_bound ?? false,
        updated_at: isoTime(ctx.now()),
      };
      const { usd_per_day, usd_per_month, updated_at, updated_by } = record;
      const changes = {
        usd_per_day,
        usd_per_month,
        updated_at,
        updated_by,
        platform_bound: record.platform_bound ? 1 : 0,
      };
      await ctx.db
        .insertInto("budgets")
        .values({ scope, subject, ...changes })
        .onConflict((conflict) => conflict.columns(["scope", "subject"]).doUpdateSet(changes))
        .execute();
      return record;
    },
    async clear(scope, subject) {
      const result = await ctx.db
        .deleteFrom("budgets")
        .where("scope", "=", scope)
        .where("subject", "=", subject)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
    async list() {
      const rows = await ctx.db
        .selectFrom("budgets")
        .selectAll()
        .orderBy("scope")
        .orderBy("subject")
        .execute();
      return rows.map(recordOf);
    },
  };
}

function recordOf(row: Selectable<BudgetsTable>): BudgetRecord {
  return { ...row, platform_bound: Number(row.platform_bound) === 1 };
}
