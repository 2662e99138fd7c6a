import { describe, expect, it } from "vitest";
import { budgetAmountProblem, parseSince, periodEnd, periodStart } from "./spend-periods.js";

const at = (iso: string) => new Date(iso);

describe("spend budget periods", () => {
  it("starts a day at UTC midnight and ends it at the next", () => {
    const now = at("2026-11-25T23:59:59.999Z");
    expect(periodStart("day", now).toISOString()).toBe("2026-11-25T00:00:00.000Z");
    expect(periodEnd("day", now).toISOString()).toBe("2026-11-26T00:00:00.000Z");
  });

  it("counts a month from the 1st, and ends it on the 1st of the next, across a year's end", () => {
    const now = at("2026-12-31T12:00:00.000Z");
    expect(periodStart("month", now).toISOString()).toBe("2026-12-01T00:00:00.000Z");
    expect(periodEnd("month", now).toISOString()).toBe("2027-01-01T00:00:00.000Z");
    expect(periodEnd("day", now).toISOString()).toBe("2027-01-01T00:00:00.000Z");
  });

  it("ends February on the 1st of March, in a leap year too", () => {
    expect(periodEnd("month", at("2028-02-29T08:00:00Z")).toISOString()).toBe("2028-03-01T00:00:00.000Z");
    expect(periodEnd("day", at("2028-02-28T08:00:00Z")).toISOString()).toBe("2028-02-29T00:00:00.000Z");
  });

  it("puts the first instant of a day in that day, not the one before", () => {
    const now = at("2026-11-26T00:00:00.000Z");
    expect(periodStart("day", now).toISOString()).toBe("2026-11-26T00:00:00.000Z");
    expect(periodEnd("day", now).toISOString()).toBe("2026-11-27T00:00:00.000Z");
  });
});

describe("a budget's amount", () => {
  it("takes zero or more dollars, and says what is wrong with anything else", () => {
    expect(budgetAmountProblem(0)).toBeUndefined();
    expect(budgetAmountProblem(7.5)).toBeUndefined();
    expect(budgetAmountProblem(-1)).toBe("-1 is below zero");
    expect(budgetAmountProblem(Number.NaN)).toBe("not a number");
    expect(budgetAmountProblem("20")).toBe('"20" is not a number');
    expect(budgetAmountProblem(Number.POSITIVE_INFINITY)).toMatch(/not a number/);
    expect(budgetAmountProblem(2e9)).toMatch(/at most 1000000000/);
  });
});

describe("a report's since", () => {
  const now = at("2026-11-25T12:00:00.000Z");
  it("reads spans back from now", () => {
    expect(parseSince("7d", now).toISOString()).toBe("2026-11-18T12:00:00.000Z");
    expect(parseSince("24h", now).toISOString()).toBe("2026-11-24T12:00:00.000Z");
    expect(parseSince("30m", now).toISOString()).toBe("2026-11-25T11:30:00.000Z");
    expect(parseSince("2w", now).toISOString()).toBe("2026-11-11T12:00:00.000Z");
  });

  it("reads a UTC date and an instant", () => {
    expect(parseSince("2026-11-01", now).toISOString()).toBe("2026-11-01T00:00:00.000Z");
    expect(parseSince("2026-11-01T06:00:00Z", now).toISOString()).toBe("2026-11-01T06:00:00.000Z");
  });

  it("refuses other text and a time to come, with the forms it takes", () => {
    expect(() => parseSince("7x", now)).toThrow(/since "7x" is not a span or a date/);
    expect(() => parseSince("-7d", now)).toThrow(/not a span or a date/);
    expect(() => parseSince("2026-13-45", now)).toThrow(/not a span or a date/);
    expect(() => parseSince("2027-01-01", now)).toThrow(/in the future/);
  });
});
