import type { components } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { budgetAmountProblem, parseSince } from "../core/spend-periods.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { printJson, table } from "./table.js";

/** A budget as the API answers it. */
type BudgetView = components["schemas"]["Budget"];
type UsageReport = components["schemas"]["UsageReport"];

export interface BudgetSetFlags {
  usdPerDay?: string;
  usdPerMonth?: string;
}

const scopePath = { tenant: "tenants", user: "users" } as const;

/** A dollar flag's text as a number; anything but zero or more dollars is refused with the form. */
function amount(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = text.trim() === "" ? Number.NaN : Number(text.trim().replace(/^\$/, ""));
  const problem = budgetAmountProblem(value);
  if (problem) {
    throw new RunyardError("USAGE", `${flag} ${JSON.stringify(text)}: ${problem}`, {
      hint: `Give ${flag} as US dollars, zero or more: ${flag} 20 or ${flag} 7.5.`,
    });
  }
  return value;
}

/** `runyard tenant|user budget set NAME --usd-per-day N --usd-per-month N` (admins). */
export async function budgetSet(
  scope: "tenant" | "user",
  subject: string,
  flags: BudgetSetFlags,
  ctx: CliContext,
): Promise<number> {
  const perDay = amount("--usd-per-day", flags.usdPerDay);
  const perMonth = amount("--usd-per-month", flags.usdPerMonth);
  if (perDay === undefined && perMonth === undefined) {
    throw new RunyardError("USAGE", "give --usd-per-day, --usd-per-month or both", {
      hint: `runyard ${scope} budget set ${subject} --usd-per-day 20 --usd-per-month 300`,
    });
  }
  const path = `/api/budgets/${scopePath[scope]}/${encodeURIComponent(subject)}`;
  const view = await apiClient(ctx).request<BudgetView>("PUT", path, {
    ...(perDay !== undefined ? { usd_per_day: perDay } : {}),
    ...(perMonth !== undefined ? { usd_per_month: perMonth } : {}),
  });
  ctx.stdout.write(`${describe(view)}\n`);
  return 0;
}

/** `runyard tenant|user budget show NAME`: the limits, where they come from, and the spend so far. */
export async function budgetShow(
  scope: "tenant" | "user",
  subject: string,
  flags: { json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const path = `/api/budgets/${scopePath[scope]}/${encodeURIComponent(subject)}`;
  const view = await apiClient(ctx).request<BudgetView>("GET", path);
  ctx.stdout.write(flags.json ? `${JSON.stringify(view)}\n` : `${describe(view)}\n`);
  return 0;
}

/** `runyard tenant|user budget clear NAME`: removes the budget set; the config file's applies again. */
export async function budgetClear(
  scope: "tenant" | "user",
  subject: string,
  ctx: CliContext,
): Promise<number> {
  const path = `/api/budgets/${scopePath[scope]}/${encodeURIComponent(subject)}`;
  const view = await apiClient(ctx).request<BudgetView>("DELETE", path);
  ctx.stdout.write(`budget of ${scope} ${subject} cleared\n${describe(view)}\n`);
  return 0;
}

function describe(view: BudgetView): string {
  const source =
    view.source === "set"
      ? `set by ${view.updated_by ?? "an admin"} at ${view.updated_at ?? "?"}`
      : view.source === "config"
        ? "from the server's config file (budgets:)"
        : "none";
  const lines = [`${view.scope} ${view.subject}: ${source}`];
  if (view.standings.length === 0) return `${lines[0]}\nno spend limit`;
  const rows = [["PERIOD", "LIMIT", "SPENT", "LEFT", "RESETS"]];
  for (const s of view.standings) {
    rows.push([
      s.period === "day" ? "day (UTC)" : "month (UTC)",
      usd(s.limit_usd),
      usd(s.spent_usd),
      usd(Math.max(0, s.limit_usd - s.spent_usd)),
      s.resets_at,
    ]);
  }
  return `${lines[0]}\n${table(rows)}`;
}

function usd(value: number): string {
  return `$${value.toFixed(value !== 0 && Math.abs(value) < 0.01 ? 4 : 2)}`;
}

export interface UsageFlags {
  tenant?: string;
  by?: string;
  since?: string;
  json?: boolean;
}

const groupings = ["user", "agent", "model", "tenant"];

/** `runyard usage [--tenant T] [--by user|agent|model|tenant] [--since 7d]`: agents' spend. */
export async function usageShow(flags: UsageFlags, ctx: CliContext): Promise<number> {
  const by = flags.by ?? "user";
  if (!groupings.includes(by)) {
    throw new RunyardError("USAGE", `--by ${JSON.stringify(by)} is not a grouping`, {
      hint: "Group by user, agent, model or tenant (tenant: platform admins).",
    });
  }
  const since = flags.since ?? "7d";
  try {
    parseSince(since, new Date());
  } catch (error) {
    if (error instanceof RunyardError)
      throw new RunyardError("USAGE", `--${error.message}`, { hint: error.hint });
    throw error;
  }
  const query = new URLSearchParams({ by, since });
  if (flags.tenant) query.set("tenant", flags.tenant);
  const report = await apiClient(ctx).request<UsageReport>("GET", `/api/usage?${query.toString()}`);
  if (flags.json) return printJson(ctx.stdout, report);
  const scope =
    report.tenant === null
      ? "every tenant"
      : report.tenant === ""
        ? "outside any tenant"
        : `tenant ${report.tenant}`;
  ctx.stdout.write(`agents' spend of ${scope} since ${report.since}\n`);
  const rows = [[by.toUpperCase(), "USD", "INPUT TOKENS", "OUTPUT TOKENS", "CALLS"]];
  for (const row of report.rows) {
    rows.push([
      row.key,
      usd(row.usd),
      String(row.input_tokens),
      String(row.output_tokens),
      String(row.calls),
    ]);
  }
  rows.push([
    "total",
    usd(report.total.usd),
    String(report.total.input_tokens),
    String(report.total.output_tokens),
    String(report.total.calls),
  ]);
  ctx.stdout.write(`${table(rows)}\n`);
  if (report.unknown_cost_tokens > 0) {
    ctx.stdout.write(
      `${report.unknown_cost_tokens} tokens of models with no reported cost and no list price are counted as $0\n`,
    );
  }
  return 0;
}
