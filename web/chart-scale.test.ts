import { describe, expect, it } from "vitest";
import { durationTicks, linear, niceTicks, referenceInView, timeTicks } from "./src/charts/scale.js";

const mib = 1024 * 1024;

describe("niceTicks", () => {
  it("rounds the top up to the first round tick above the data", () => {
    expect(niceTicks(14.2, 4)).toEqual({ top: 15, step: 5, ticks: [0, 5, 10, 15] });
    expect(niceTicks(2.3, 4)).toEqual({ top: 3, step: 1, ticks: [0, 1, 2, 3] });
  });

  it("keeps a chart of 14 MiB far below a 256 MiB limit", () => {
    const { top } = niceTicks((14.3 * mib) / mib, 4);
    expect(top).toBeLessThan(32);
    expect(top).toBeGreaterThanOrEqual(14);
  });

  it("gives small dollar amounts steps without a float tail", () => {
    expect(niceTicks(0.04, 4)).toEqual({ top: 0.04, step: 0.01, ticks: [0, 0.01, 0.02, 0.03, 0.04] });
    expect(niceTicks(0.3, 3).ticks).toEqual([0, 0.1, 0.2, 0.3]);
  });

  it("steps by 1, 2, 2.5 or 5 times a power of ten", () => {
    expect(niceTicks(100, 4).step).toBe(25);
    expect(niceTicks(180, 4).step).toBe(50);
    expect(niceTicks(7, 4).step).toBe(2);
  });

  it("draws an axis from 0 to 1 for no data, zero or nonsense", () => {
    for (const most of [0, -3, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(niceTicks(most, 4).top).toBe(1);
    }
  });
});

describe("timeTicks", () => {
  it("puts ticks on round minutes within an hour", () => {
    const start = new Date(2026, 10, 29, 14, 3, 20).getTime();
    const ticks = timeTicks(start, start + 3_600_000, 6);
    expect(ticks.map((t) => t.label)).toEqual(["14:10", "14:20", "14:30", "14:40", "14:50", "15:00"]);
    expect(ticks.every((t) => t.at >= start && t.at <= start + 3_600_000)).toBe(true);
  });

  it("labels a week's midnights by their dates", () => {
    const start = new Date(2026, 10, 22, 9, 0).getTime();
    const ticks = timeTicks(start, start + 7 * 86_400_000, 5);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    for (const tick of ticks) {
      expect(tick.label).toMatch(/^11-\d\d$/);
      expect(new Date(tick.at).getHours()).toBe(0);
    }
  });

  it("has seconds in the labels of a span of a minute", () => {
    const start = new Date(2026, 10, 29, 14, 0, 1).getTime();
    expect(timeTicks(start, start + 60_000, 4).map((t) => t.label)).toEqual([
      "14:00:15",
      "14:00:30",
      "14:00:45",
      "14:01:00",
    ]);
  });

  it("has no ticks for an empty span", () => {
    expect(timeTicks(5, 5)).toEqual([]);
  });
});

describe("linear", () => {
  it("maps a value onto a range that may run downwards", () => {
    const y = linear([0, 20], [100, 0]);
    expect(y(0)).toBe(100);
    expect(y(5)).toBe(75);
    expect(y(20)).toBe(0);
  });
});

describe("referenceInView", () => {
  it("keeps a limit far above the data out of the scale", () => {
    expect(referenceInView(14, 256)).toBe(false);
    expect(referenceInView(2.4, 5)).toBe(true);
    expect(referenceInView(0, 5)).toBe(true);
  });
});

describe("durationTicks", () => {
  it("ends at the first round duration at or above the length, in round steps", () => {
    expect(durationTicks(9300)).toEqual({
      top: 10_000,
      step: 2000,
      ticks: [0, 2000, 4000, 6000, 8000, 10_000],
    });
    expect(durationTicks(850)).toEqual({ top: 1000, step: 200, ticks: [0, 200, 400, 600, 800, 1000] });
    expect(durationTicks(95_000).ticks).toEqual([0, 30_000, 60_000, 90_000, 120_000]);
  });

  it("has one step for a run of no length, and days past the longest step", () => {
    expect(durationTicks(0)).toEqual({ top: 1, step: 1, ticks: [0, 1] });
    const { step, ticks } = durationTicks(20 * 24 * 3600 * 1000);
    expect(step % (24 * 3600 * 1000)).toBe(0);
    expect(ticks.length).toBeLessThanOrEqual(6);
  });
});
