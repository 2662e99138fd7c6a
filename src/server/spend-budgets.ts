import { costFor } from "../agents/prices.js";
import type { BudgetOverrides } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import type { AgentTask } from "../core/jobs/agent.js";
import {
  type BudgetLimits,
  type BudgetPeriod,
  budgetPeriods,
  limitOf,
  periodEnd,
  periodStart,
} from "../core/spend-periods.js";
import type { AgentUsageSum, BudgetScope, SpendReservation, SpendView, Store } from "../store/index.js";
import { userBehind } from "./acting-for.js";

/** Whose turn it is: the run's tenant and who submitted it (a user's id, or a token's). */
export interface SpendOwner {
  tenantId: string | null;
  createdBy: string | null;
  /**
   * The run's `created_by_user` (null: a token of no user), so a token revoked after the submit leaves the
   * spend that user's; looked up from `createdBy` when absent (a submit not stored yet).
   */
  createdByUser?: string | null;
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
 * Spend budgets above the task (docs/agents.md "Spend budgets"): per tenant and user, dollars per UTC day
 * and month, through the API (stored, winning) or the config's `budgets:`. Spend is counted from the
 * store's usage rows at every check, so every replica sees the same figure. A starting turn holds part
 * of what is left (`reserveTurn`) and gives back the rest as it ends, so turns starting together, on one
 * replica or several, never share out more than was left.
 */
export class SpendBudgets {
  constructor(
    private readonly store: Pick<Store, "agentUsage" | "budgets" | "tokens" | "users" | "spendReservations">,
    private readonly config: BudgetOverrides = {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The limits that apply to a tenant or user, and where they come from. */
  async effective(
    scope: BudgetScope,
    subject: string,
    budgets: Pick<Store["budgets"], "get"> = this.store.budgets,
  ): Promise<EffectiveBudget> {
    const stored = await budgets.get(scope, subject);
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
    const user = await this.userOf(owner);
    if (user) out.push(...(await this.standingsOf("user", user.username, { userId: user.id }, now)));
    return out;
  }

  /** The standings of one tenant or user (for `budget show`). */
  async standingsFor(scope: BudgetScope, subject: string, userId?: string): Promise<BudgetStanding[]> {
    const filter = scope === "tenant" ? { tenantId: subject } : { userId: userId ?? subject };
    return this.standingsOf(scope, subject, filter, this.now());
  }

  /**
   * Throws BUDGET_EXCEEDED when a budget of the owner's is spent. Else the tightest budget (its rest goes
   * to the runner, which stops the turn past it), or undefined when none applies.
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
    view: Pick<SpendView, "agentUsage" | "budgets"> = this.store,
  ): Promise<BudgetStanding[]> {
    const { limits, source } = await this.effective(scope, subject, view.budgets);
    if (source === "none") return [];
    const periods = budgetPeriods.filter((period) => limitOf(limits, period) !== undefined);
    if (periods.length === 0) return [];
    const monthStart = periodStart("month", now);
    const today = periodStart("day", now).toISOString().slice(0, 10);
    const sums = await view.agentUsage.sum({ ...filter, since: monthStart.toISOString() });
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

  /**
   * Admits a starting turn, holding min(`estimate_usd` or the config's `turn_reservation_usd`, the
   * tightest budget's rest less running turns' holds). Throws BUDGET_EXCEEDED when a budget is spent or
   * all its rest is held. Answers undefined when no budget applies; else what the turn may spend (the
   * runner stops it past that) and `release`, to call once it has ended.
   */
  async reserveTurn(
    owner: SpendOwner,
    turn: { runId: string; estimate_usd?: number; ttl_ms: number },
  ): Promise<TurnReservation | undefined> {
    const user = await this.userOf(owner);
    const subjects = {
      ...(owner.tenantId !== null ? { tenantId: owner.tenantId } : {}),
      ...(user ? { userId: user.id } : {}),
    };
    if (subjects.tenantId === undefined && subjects.userId === undefined) return undefined;
    const now = this.now();
    const estimate = turn.estimate_usd ?? this.config.turn_reservation_usd;
    const { answer, reservation } = await this.store.spendReservations.reserve(subjects, async (view) => {
      const standings = [
        ...(owner.tenantId !== null
          ? await this.standingsOf("tenant", owner.tenantId, { tenantId: owner.tenantId }, now, view)
          : []),
        ...(user ? await this.standingsOf("user", user.username, { userId: user.id }, now, view) : []),
      ];
      if (standings.length === 0) return { answer: undefined };
      const held = {
        tenant: await heldBy(view, { tenantId: owner.tenantId ?? "" }),
        user: user ? await heldBy(view, { userId: user.id }) : { usd: 0, turns: 0 },
      };
      let tightest: { left_usd: number; standing: BudgetStanding } | undefined;
      for (const standing of standings) {
        const unspent = standing.limit_usd - standing.spent_usd;
        if (unspent <= 0) throw exceeded(standing);
        const hold = held[standing.scope];
        const left = unspent - hold.usd;
        if (left <= 0) throw heldUp(standing, hold);
        if (!tightest || left < tightest.left_usd) tightest = { left_usd: left, standing };
      }
      if (!tightest) return { answer: undefined };
      const usd = estimate !== undefined ? Math.min(estimate, tightest.left_usd) : tightest.left_usd;
      const unspent = tightest.standing.limit_usd - tightest.standing.spent_usd;
      return {
        answer: { left_usd: usd, standing: tightest.standing, share: usd < unspent },
        reservation: { run_id: turn.runId, usd, ttl_ms: turn.ttl_ms },
      };
    });
    if (!answer || !reservation) return undefined;
    const store = this.store;
    return {
      ...answer,
      reservation,
      release: async () => {
        await store.spendReservations.release(reservation.id);
      },
    };
  }

  private async userOf(owner: SpendOwner): Promise<{ id: string; username: string } | undefined> {
    // A trigger made through a token revoked since still spends its maker's budget (userBehind).
    const userId =
      owner.createdByUser !== undefined ? owner.createdByUser : await userBehind(this.store, owner.createdBy);
    if (userId === null) return undefined;
    const user = await this.store.users.get(userId);
    return user ? { id: user.id, username: user.username } : undefined;
  }
}

/** What a turn holds as it starts, and for how long at most: its dollar budget, and its time limit. */
export function turnEstimate(task: Pick<AgentTask, "budget" | "timeout_ms">): {
  estimate_usd?: number;
  ttl_ms: number;
} {
  return {
    ...(task.budget?.usd !== undefined ? { estimate_usd: task.budget.usd } : {}),
    // The turn's limit, its tests and commit, and a margin; released long before, as it ends.
    ttl_ms: task.timeout_ms + 15 * 60_000,
  };
}

/** The runner's stop for a turn past its share. */
export function spendLimitOf(spend: TurnReservation): NonNullable<AgentTask["spend_limit"]> {
  const name = budgetName(spend.standing);
  return {
    usd: spend.left_usd,
    // A turn given less than all that was left is stopped at its share.
    budget: spend.share ? `its share of ${name}` : name,
    resets_at: spend.standing.resets_at,
  };
}

/** A turn's admission: what it may spend, of which budget, and its hold to give back at its end. */
export interface TurnReservation {
  left_usd: number;
  /** True when the turn holds less than all that was left (other turns, its own estimate). */
  share: boolean;
  standing: BudgetStanding;
  reservation: SpendReservation;
  release(): Promise<void>;
}

/**
 * What running turns hold of a tenant's or user's budgets: per run, its reservations less its spend
 * since the first (counted as spent). "Since" is by usage seq, not time: usage reported before a hold
 * is never the hold's, whatever clock dated it.
 */
async function heldBy(
  view: SpendView,
  subject: { tenantId?: string; userId?: string },
): Promise<{ usd: number; turns: number }> {
  const live = await view.live(subject);
  const byRun = new Map<string, { usd: number; afterSeq: number; turns: number }>();
  for (const hold of live) {
    const run = byRun.get(hold.run_id);
    if (run) {
      run.usd += hold.usd;
      run.turns += 1;
      run.afterSeq = Math.min(run.afterSeq, hold.after_seq);
    } else byRun.set(hold.run_id, { usd: hold.usd, afterSeq: hold.after_seq, turns: 1 });
  }
  let usd = 0;
  let turns = 0;
  for (const [runId, run] of byRun) {
    const spent = (await view.agentUsage.sum({ runId, afterSeq: run.afterSeq })).reduce(
      (total, sum) => total + usdOf(sum),
      0,
    );
    usd += Math.max(0, run.usd - spent);
    turns += run.turns;
  }
  return { usd, turns };
}

function heldUp(standing: BudgetStanding, held: { usd: number; turns: number }): RunyardError {
  const name = budgetName(standing);
  const left = standing.limit_usd - standing.spent_usd;
  return new RunyardError(
    "BUDGET_EXCEEDED",
    `what is left of ${name} ($${left.toFixed(4)}) is held by ${held.turns} agent ${held.turns === 1 ? "turn" : "turns"} running now`,
    {
      hint: `Start it again once they end (what they do not spend is given back), or ask an admin to set budgets.turn_reservation_usd so each turn holds less of it; runyard usage shows the spend.`,
      details: budgetDetails(standing, held.usd),
    },
  );
}

/** What a BUDGET_EXCEEDED error tells of the budget; `heldUsd` when running turns hold the rest. */
function budgetDetails(standing: BudgetStanding, heldUsd?: number) {
  const { scope, subject, period, limit_usd, spent_usd, resets_at } = standing;
  return {
    scope,
    subject,
    period,
    limit_usd,
    spent_usd,
    ...(heldUsd === undefined ? {} : { held_usd: heldUsd }),
    resets_at,
  };
}

function exceeded(standing: BudgetStanding): RunyardError {
  const name = budgetName(standing);
  return new RunyardError(
    "BUDGET_EXCEEDED",
    `${name} is spent ($${standing.spent_usd.toFixed(4)} of $${dollars(standing.limit_usd)}); it starts again at ${standing.resets_at}`,
    {
      hint: `Wait until ${standing.resets_at} (UTC), or ask an admin to raise it (runyard ${standing.scope} budget set ${standing.subject} --usd-per-${standing.period} N); runyard usage shows the spend.`,
      details: budgetDetails(standing),
    },
  );
}
