import { costFor } from "../agents/prices.js";
import type { BudgetOverrides } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import {
  type BudgetLimits,
  type BudgetPeriod,
  budgetPeriods,
  limitOf,
  periodEnd,
  periodStart,
} from "../core/spend-periods.js";
import type { AgentUsageSum, BudgetScope, Store } from "../store/index.js";

/** Whose turn it is: the run's tenant and who submitted it (a user's id, or a token's). */
export interface SpendOwner {
  tenantId: string | null;
  createdBy: string | null;
}

/** One budget that applies to a turn, with what its period has spent so far. */
export interface BudgetStanding {
  scope: BudgetScope;
  /** The tenant's id or the user's name. */
  subject: string;
  period: BudgetPeriod;
  limit_usd: number;
  spent_usd: number;
  /** When the period ends and the budget starts again (ISO-8601 UTC). */
  resets_at: string;
  /** Where the limit comes from: set through the API, or the server's config file. */
  source: "set" | "config";
}

/** A budget's limits as one tenant or user has them, and where they come from. */
export interface EffectiveBudget {
  limits: BudgetLimits;
  source: "set" | "config" | "none";
  updated_at?: string;
  updated_by?: string | null;
}

/** Dollars of a usage sum: the costs the agents reported, and the list price of the rest. */
export function usdOf(sum: AgentUsageSum): number {
  const unpriced = sum.unpriced_input_tokens + sum.unpriced_output_tokens;
  const listed =
    unpriced === 0 ? 0 : (costFor(sum.model, sum.unpriced_input_tokens, sum.unpriced_output_tokens) ?? 0);
  return sum.reported_usd + listed;
}

/** Tokens of a usage sum that have neither a reported cost nor a list price: counted as $0. */
export function unknownCostTokens(sum: AgentUsageSum): number {
  const unpriced = sum.unpriced_input_tokens + sum.unpriced_output_tokens;
  if (unpriced === 0) return 0;
  return costFor(sum.model, sum.unpriced_input_tokens, sum.unpriced_output_tokens) === undefined
    ? unpriced
    : 0;
}

/** `tenant acme's daily budget of $20` */
export function budgetName(
  standing: Pick<BudgetStanding, "scope" | "subject" | "period" | "limit_usd">,
): string {
  const period = standing.period === "day" ? "daily" : "monthly";
  return `${standing.scope} ${standing.subject}'s ${period} budget of $${dollars(standing.limit_usd)}`;
}

function dollars(usd: number): string {
  return Number.isInteger(usd) ? String(usd) : usd.toFixed(2);
}

/**
 * Spend budgets above the task (docs/agents.md "Spend budgets"): per tenant and per user, a
 * limit in dollars per UTC day and month, set through the API (stored) or the config file's
 * `budgets:`; a stored budget wins over the file's. Spend is counted from the store's usage
 * rows at every check, never from memory, so every replica sees the same figure; two turns
 * starting at the same instant on two replicas may both pass, each stopped by what was left
 * when it started.
 */
export class SpendBudgets {
  constructor(
    private readonly store: Pick<Store, "agentUsage" | "budgets" | "tokens" | "users">,
    private readonly config: BudgetOverrides = {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The limits that apply to a tenant or user, and where they come from. */
  async effective(scope: BudgetScope, subject: string): Promise<EffectiveBudget> {
    const stored = await this.store.budgets.get(scope, subject);
    if (stored) {
      return {
        limits: {
          ...(stored.usd_per_day !== null ? { usd_per_day: stored.usd_per_day } : {}),
          ...(stored.usd_per_month !== null ? { usd_per_month: stored.usd_per_month } : {}),
        },
        source: "set",
        updated_at: stored.updated_at,
        updated_by: stored.updated_by,
      };
    }
    const fromFile = (scope === "tenant" ? this.config.tenants : this.config.users)?.[subject];
    return fromFile ? { limits: fromFile, source: "config" } : { limits: {}, source: "none" };
  }

  /** Every budget of the owner's tenant and user that has a limit, with its period's spend. */
  async standings(owner: SpendOwner): Promise<BudgetStanding[]> {
    const now = this.now();
    const out: BudgetStanding[] = [];
    if (owner.tenantId !== null) {
      out.push(...(await this.standingsOf("tenant", owner.tenantId, { tenantId: owner.tenantId }, now)));
    }
    const user = await this.userOf(owner.createdBy);
    if (user) out.push(...(await this.standingsOf("user", user.username, { userId: user.id }, now)));
    return out;
  }

  /** The standings of one tenant or user (for `budget show`). */
  async standingsFor(scope: BudgetScope, subject: string, userId?: string): Promise<BudgetStanding[]> {
    const filter = scope === "tenant" ? { tenantId: subject } : { userId: userId ?? subject };
    return this.standingsOf(scope, subject, filter, this.now());
  }

  /**
   * Throws BUDGET_EXCEEDED when a budget of the owner's is spent: a turn may not start. Answers
   * the tightest budget otherwise (what is left of it goes to the runner, which stops the turn
   * once its cost passes it), or undefined when no budget applies.
   */
  async admit(owner: SpendOwner): Promise<{ left_usd: number; standing: BudgetStanding } | undefined> {
    const standings = await this.standings(owner);
    let tightest: { left_usd: number; standing: BudgetStanding } | undefined;
    for (const standing of standings) {
      const left = standing.limit_usd - standing.spent_usd;
      if (left <= 0) throw exceeded(standing);
      if (!tightest || left < tightest.left_usd) tightest = { left_usd: left, standing };
    }
    return tightest;
  }

  private async standingsOf(
    scope: BudgetScope,
    subject: string,
    filter: { tenantId?: string; userId?: string },
    now: Date,
  ): Promise<BudgetStanding[]> {
    const { limits, source } = await this.effective(scope, subject);
    if (source === "none") return [];
    const periods = budgetPeriods.filter((period) => limitOf(limits, period) !== undefined);
    if (periods.length === 0) return [];
    const monthStart = periodStart("month", now);
    const today = periodStart("day", now).toISOString().slice(0, 10);
    const sums = await this.store.agentUsage.sum({ ...filter, since: monthStart.toISOString() });
    return periods.map((period) => ({
      scope,
      subject,
      period,
      limit_usd: limitOf(limits, period) ?? 0,
      spent_usd: sums
        .filter((sum) => period === "month" || sum.day === today)
        .reduce((total, sum) => total + usdOf(sum), 0),
      resets_at: periodEnd(period, now).toISOString(),
      source,
    }));
  }

  private async userOf(createdBy: string | null): Promise<{ id: string; username: string } | undefined> {
    if (createdBy === null) return undefined;
    const token = await this.store.tokens.get(createdBy);
    const userId = token ? token.user_id : createdBy;
    if (userId === null) return undefined;
    const user = await this.store.users.get(userId);
    return user ? { id: user.id, username: user.username } : undefined;
  }
}

function exceeded(standing: BudgetStanding): RunyardError {
  const name = budgetName(standing);
  return new RunyardError(
    "BUDGET_EXCEEDED",
    `${name} is spent ($${standing.spent_usd.toFixed(4)} of $${dollars(standing.limit_usd)}); it starts again at ${standing.resets_at}`,
    {
      hint: `Wait until ${standing.resets_at} (UTC), or ask an admin to raise it (runyard ${standing.scope} budget set ${standing.subject} --usd-per-${standing.period} N); runyard usage shows the spend.`,
      details: {
        scope: standing.scope,
        subject: standing.subject,
        period: standing.period,
        limit_usd: standing.limit_usd,
        spent_usd: standing.spent_usd,
        resets_at: standing.resets_at,
      },
    },
  );
}
