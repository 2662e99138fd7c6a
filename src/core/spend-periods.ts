import { RunyardError } from "./errors.js";

/** The periods a spend budget counts over: a UTC calendar day or month. */
export type BudgetPeriod = "day" | "month";

export const budgetPeriods: readonly BudgetPeriod[] = ["day", "month"];

/** The dollar limits of one tenant or user per period; absent: no limit of that period. */
export interface BudgetLimits {
  usd_per_day?: number | undefined;
  usd_per_month?: number | undefined;
}

/** When the period holding `now` began: 00:00 UTC of its day, or of the 1st of its month. */
export function periodStart(period: BudgetPeriod, now: Date): Date {
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth();
  return period === "day"
    ? new Date(Date.UTC(year, month, now.getUTCDate()))
    : new Date(Date.UTC(year, month, 1));
}

/** When the period holding `now` ends, and its budget starts again from nothing. */
export function periodEnd(period: BudgetPeriod, now: Date): Date {
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth();
  return period === "day"
    ? new Date(Date.UTC(year, month, now.getUTCDate() + 1))
    : new Date(Date.UTC(year, month + 1, 1));
}

/** The limit of a period from a budget's two fields. */
export function limitOf(limits: BudgetLimits, period: BudgetPeriod): number | undefined {
  return period === "day" ? limits.usd_per_day : limits.usd_per_month;
}

/** Why a dollar amount given for a budget is not one, or undefined when it is. */
export function budgetAmountProblem(value: unknown): string | undefined {
  if (typeof value !== "number") return `${JSON.stringify(value)} is not a number`;
  if (!Number.isFinite(value)) return "not a number";
  if (value < 0) return `${value} is below zero`;
  if (value > 1_000_000_000) return `${value} is more than any budget runyard counts (at most 1000000000)`;
  return undefined;
}

const sinceUnits: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/**
 * The start of a report window as a person writes it: a span back from now (`30m`, `24h`, `7d`,
 * `2w`), or a date or instant (`2026-11-01`, `2026-11-01T12:00:00Z`). Anything else, or a time
 * in the future, is refused with the forms it takes.
 */
export function parseSince(text: string, now: Date): Date {
  const value = text.trim();
  const span = /^(\d{1,6})\s*(m|h|d|w)$/i.exec(value);
  if (span) {
    const amount = Number(span[1]);
    const unit = sinceUnits[(span[2] ?? "d").toLowerCase()] ?? 86_400_000;
    return new Date(now.getTime() - amount * unit);
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    const date = new Date(value.length === 10 ? `${value}T00:00:00Z` : value);
    if (!Number.isNaN(date.getTime())) {
      if (date.getTime() > now.getTime()) {
        throw new RunyardError("INVALID_INPUT", `since ${value} is in the future`, {
          hint: "Give a time in the past: a span back from now like 7d, or a date like 2026-11-01.",
        });
      }
      return date;
    }
  }
  throw new RunyardError("INVALID_INPUT", `since ${JSON.stringify(text)} is not a span or a date`, {
    hint: "Write a span back from now (30m, 24h, 7d, 2w) or a UTC date (2026-11-01) or instant (2026-11-01T12:00:00Z).",
  });
}
