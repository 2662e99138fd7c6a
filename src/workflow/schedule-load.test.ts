import { describe, expect, it } from "vitest";
import { cpuPacedMs, cpuTimed } from "../../test/helpers/machine-pace.js";
import { peakRunsPerHour, shortestMergedGap } from "./schedule-load.js";

const from = new Date("2026-03-02T00:00:30.000Z");
const utc = (...crons: string[]) => crons.map((cron) => ({ cron, timezone: "UTC" }));

describe("a workflow's schedules judged together", () => {
  it("finds the shortest gap across entries, naming them in the file's order", () => {
    expect(shortestMergedGap(utc("30 * * * * *", "0 * * * * *"), from)).toEqual({
      gapMs: 30_000,
      between: ["30 * * * * *", "0 * * * * *"],
    });
    expect(shortestMergedGap(utc("0,1 * * * *"), from)?.gapMs).toBe(60_000);
    expect(shortestMergedGap(utc("0 3 * * *"), from)?.gapMs).toBe(24 * 3600_000);
  });

  it("counts the busiest hour of the next day, a burst inside one hour whole", () => {
    expect(peakRunsPerHour(utc("*/5 * * * *"), from)).toBe(12);
    expect(peakRunsPerHour(utc("* 3 * * *"), from)).toBe(60);
    expect(peakRunsPerHour(utc("0 9 * * 1-5"), from)).toBe(1);
    expect(peakRunsPerHour(utc("*/2 * * * *", "1-59/2 * * * *"), from)).toBe(60);
  });

  it("estimates a dense cron from its rate rather than walking a day of ticks", () => {
    const { value, cpuMs } = cpuTimed(() => peakRunsPerHour(utc("* * * * * *"), from));
    expect(value).toBeGreaterThanOrEqual(3600);
    expect(cpuMs).toBeLessThan(cpuPacedMs(1000));
  });
});
