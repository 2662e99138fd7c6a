import { sql } from "kysely";
import type { RunEvent } from "../core/events.js";
import { int } from "./columns.js";
import type { StoreContext } from "./dialect.js";

/** Which usage a sum covers; every field narrows it. */
export interface AgentUsageFilter {
  /** `""`: usage outside any tenant. */
  tenantId?: string;
  /** A user's id (or a token's, for a token without a user). */
  userId?: string;
  /** From this instant on (ISO-8601 UTC), inclusive. */
  since?: string;
  /** Before this instant, exclusive. */
  until?: string;
  /** One run's usage. */
  runId?: string;
  /** Usage stored after the run's event of this seq (with `runId`). */
  afterSeq?: number;
}

/**
 * Usage summed per UTC day, tenant, user, agent and model. Tokens whose cost the agent did not
 * report are summed apart (`unpriced_*`): the server puts its list price on them, which is exact
 * on a sum as a price is per token.
 */
export interface AgentUsageSum {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  tenant_id: string;
  user_id: string;
  agent: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  /** The sum of the costs the agents reported. */
  reported_usd: number;
  unpriced_input_tokens: number;
  unpriced_output_tokens: number;
  /** How many usage events (model calls) the sum holds. */
  events: number;
}

/**
 * Records the `agent.usage` events of an append, inside its transaction, so a usage event and its
 * row are stored together or not at all; a duplicate (same run and seq) is kept once.
 */
export async function recordAgentUsage(
  ctx: StoreContext,
  runId: string,
  stored: readonly RunEvent[],
): Promise<void> {
  const usage = stored.filter((event) => event.type === "agent.usage");
  if (usage.length === 0) return;
  const owner = await ctx.db
    .selectFrom("runs")
    .select(["tenant_id", "created_by", "created_by_user"])
    .where("id", "=", runId)
    .executeTakeFirst();
  await ctx.db
    .insertInto("agent_usage")
    .values(
      usage.map((event) => ({
        run_id: runId,
        seq: event.seq,
        at: event.ts,
        tenant_id: owner?.tenant_id ?? "",
        // The run's user as it was at submit (its token may have been revoked since); a token
        // of no user counts as its own.
        user_id: owner?.created_by_user ?? owner?.created_by ?? "",
        agent: event.agent ?? "",
        model: event.model ?? "",
        input_tokens: event.input_tokens,
        output_tokens: event.output_tokens,
        cost_usd: event.cost_usd ?? null,
      })),
    )
    .onConflict((conflict) => conflict.columns(["run_id", "seq"]).doNothing())
    .execute();
}

/** The agents' usage, as their `agent.usage` events reported it (see `recordAgentUsage`). */
export interface AgentUsageRepo {
  /** Usage summed per UTC day, tenant, user, agent and model, oldest day first. */
  sum(filter: AgentUsageFilter): Promise<AgentUsageSum[]>;
}

export function agentUsageRepo(ctx: StoreContext): AgentUsageRepo {
  return {
    async sum(filter) {
      let query = ctx.db
        .selectFrom("agent_usage")
        .select([
          sql<string>`substr(at, 1, 10)`.as("day"),
          "tenant_id",
          "user_id",
          "agent",
          "model",
          sql<number | string>`sum(input_tokens)`.as("input_tokens"),
          sql<number | string>`sum(output_tokens)`.as("output_tokens"),
          sql<number | string>`sum(coalesce(cost_usd, 0))`.as("reported_usd"),
          sql<number | string>`sum(case when cost_usd is null then input_tokens else 0 end)`.as(
            "unpriced_input_tokens",
          ),
          sql<number | string>`sum(case when cost_usd is null then output_tokens else 0 end)`.as(
            "unpriced_output_tokens",
          ),
          sql<number | string>`count(*)`.as("events"),
        ])
        .groupBy([sql`substr(at, 1, 10)`, "tenant_id", "user_id", "agent", "model"])
        .orderBy(sql`substr(at, 1, 10)`);
      if (filter.tenantId !== undefined) query = query.where("tenant_id", "=", filter.tenantId);
      if (filter.userId !== undefined) query = query.where("user_id", "=", filter.userId);
      if (filter.since !== undefined) query = query.where("at", ">=", filter.since);
      if (filter.until !== undefined) query = query.where("at", "<", filter.until);
      if (filter.runId !== undefined) query = query.where("run_id", "=", filter.runId);
      if (filter.afterSeq !== undefined) query = query.where("seq", ">", filter.afterSeq);
      const rows = await query.execute();
      return rows.map((row) => ({
        ...row,
        input_tokens: int(row.input_tokens),
        output_tokens: int(row.output_tokens),
        reported_usd: Number(row.reported_usd),
        unpriced_input_tokens: int(row.unpriced_input_tokens),
        unpriced_output_tokens: int(row.unpriced_output_tokens),
        events: int(row.events),
      }));
    },
  };
}
