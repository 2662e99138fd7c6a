import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { parseSince } from "../../core/spend-periods.js";
import type { AgentUsageSum, Store } from "../../store/index.js";
import { apiSchemas } from "../api-schemas.js";
import { callerOf, isPlatformAdmin } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { unknownCostTokens, usdOf } from "../spend-budgets.js";

export const usageGroupings = ["user", "agent", "model", "tenant"] as const;
export type UsageGrouping = (typeof usageGroupings)[number];

const UsageQuery = z.object({
  tenant: z
    .string()
    .min(1)
    .optional()
    .describe("one tenant's spend (platform admins: any; others: their own, the default)"),
  by: z.enum(usageGroupings).default("user").describe("what the rows are: per user, agent, model or tenant"),
  since: z.string().default("30d").describe("a span back from now (24h, 7d, 2w) or a UTC date (2026-11-01)"),
});

const Figures = {
  usd: z.number().describe("reported costs, and the list price of tokens reported without one"),
  input_tokens: z.number(),
  output_tokens: z.number(),
  calls: z.number().describe("model calls (usage events)"),
};

const UsageReport = z.object({
  tenant: z.string().nullable().describe("the tenant reported; null: every tenant (platform admins)"),
  by: z.enum(usageGroupings),
  since: z.string(),
  until: z.string(),
  total: z.object(Figures),
  rows: z.array(z.object({ key: z.string(), ...Figures })).describe("most spent first"),
  days: z
    .array(
      z.object({
        day: z.string().describe("YYYY-MM-DD, UTC"),
        ...Figures,
        groups: z
          .array(z.object({ key: z.string(), usd: z.number() }))
          .describe(
            "the day's dollars per row of `rows` (its `key`), most spent first; rows with no spend that day left out",
          ),
      }),
    )
    .describe("every day of the window, oldest first"),
  unknown_cost_tokens: z
    .number()
    .describe("tokens of models with neither a reported cost nor a list price: counted as $0"),
});
apiSchemas.add(UsageReport, { id: "UsageReport" });
export type UsageReport = z.infer<typeof UsageReport>;

type FigureSums = { usd: number; input_tokens: number; output_tokens: number; calls: number };

function add(into: FigureSums, sum: AgentUsageSum): void {
  into.usd += usdOf(sum);
  into.input_tokens += sum.input_tokens;
  into.output_tokens += sum.output_tokens;
  into.calls += sum.events;
}

const empty = (): FigureSums => ({ usd: 0, input_tokens: 0, output_tokens: 0, calls: 0 });

/** Agents' spend (`GET /api/usage`): members and a tenant's admin see their tenant's only. */
export function usageRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    "/api/usage",
    {
      schema: {
        operationId: "getUsage",
        summary: "Agents' spend: tokens and dollars per user, agent, model or tenant, and per day",
        description:
          "Counted from the usage events the agents report; a cost the agent reports wins, else the list price of its model. A member sees their own tenant's figures only.",
        tags: ["budgets"],
        querystring: UsageQuery,
        response: protectedResponses(200, "the report", UsageReport, 400, 403),
      },
    },
    async (request) => {
      const principal = callerOf(request);
      const asked = request.query.tenant;
      const platform = isPlatformAdmin(principal);
      const own = principal.tenant_id ?? "";
      if (!platform && asked !== undefined && asked !== own) {
        throw new RunyardError("FORBIDDEN", `you see the spend of your own tenant only, not of ${asked}`, {
          hint: "Leave out --tenant (tenant=): your tenant's figures are the default.",
        });
      }
      if (!platform && request.query.by === "tenant") {
        throw new RunyardError("FORBIDDEN", "only a platform admin reports spend by tenant", {
          hint: "Group by user, agent or model.",
        });
      }
      const now = new Date();
      const since = parseSince(request.query.since, now);
      const tenant = platform ? (asked ?? null) : own;
      return usageReport(deps.store, { tenant, by: request.query.by, since, until: now });
    },
  );
}

/** The report of a window: totals, rows per grouping, and one entry per UTC day. */
export async function usageReport(
  store: Pick<Store, "agentUsage" | "users" | "tokens">,
  query: { tenant: string | null; by: UsageGrouping; since: Date; until: Date },
): Promise<UsageReport> {
  const sums = await store.agentUsage.sum({
    ...(query.tenant !== null ? { tenantId: query.tenant } : {}),
    since: query.since.toISOString(),
    until: query.until.toISOString(),
  });
  const total = empty();
  const rows = new Map<string, FigureSums>();
  const days = new Map<string, FigureSums & { groups: Map<string, number> }>();
  const emptyDay = () => ({ ...empty(), groups: new Map<string, number>() });
  // A chart reads a day without spend as zero, not as a gap; a window of years lists spent days only.
  if (query.until.getTime() - query.since.getTime() <= 400 * 86_400_000) {
    for (let day = new Date(query.since); day <= query.until; day = new Date(day.getTime() + 86_400_000)) {
      days.set(day.toISOString().slice(0, 10), emptyDay());
    }
    days.set(query.until.toISOString().slice(0, 10), emptyDay());
  }
  let unknown = 0;
  const names = new Map<string, string>();
  for (const sum of sums) {
    add(total, sum);
    unknown += unknownCostTokens(sum);
    const key = await keyOf(store, query.by, sum, names);
    const row = rows.get(key) ?? empty();
    add(row, sum);
    rows.set(key, row);
    const day = days.get(sum.day) ?? emptyDay();
    add(day, sum);
    day.groups.set(key, (day.groups.get(key) ?? 0) + usdOf(sum));
    days.set(sum.day, day);
  }
  return {
    tenant: query.tenant,
    by: query.by,
    since: query.since.toISOString(),
    until: query.until.toISOString(),
    total,
    rows: [...rows]
      .map(([key, figures]) => ({ key, ...figures }))
      .sort((a, b) => b.usd - a.usd || a.key.localeCompare(b.key)),
    days: [...days]
      .map(([day, { groups, ...figures }]) => ({
        day,
        ...figures,
        groups: [...groups]
          .filter(([, usd]) => usd > 0)
          .map(([key, usd]) => ({ key, usd }))
          .sort((a, b) => b.usd - a.usd || a.key.localeCompare(b.key)),
      }))
      .sort((a, b) => a.day.localeCompare(b.day)),
    unknown_cost_tokens: unknown,
  };
}

/** The row a sum belongs to; a user is shown by name, a token without a user as `token NAME`. */
async function keyOf(
  store: Pick<Store, "users" | "tokens">,
  by: UsageGrouping,
  sum: AgentUsageSum,
  names: Map<string, string>,
): Promise<string> {
  if (by === "agent") return sum.agent || "(unnamed)";
  if (by === "model") return sum.model || "(unnamed)";
  if (by === "tenant") return sum.tenant_id || "(no tenant)";
  const known = names.get(sum.user_id);
  if (known !== undefined) return known;
  const user = sum.user_id ? await store.users.get(sum.user_id) : undefined;
  const token = user || !sum.user_id ? undefined : await store.tokens.get(sum.user_id);
  const name = user ? user.username : token ? `token ${token.name}` : sum.user_id || "(nobody)";
  names.set(sum.user_id, name);
  return name;
}
