import { describe, expect, it } from "vitest";
import { cpuPacedMs, cpuTimed } from "../../test/helpers/machine-pace.js";
import { ticksBetween } from "./schedule.js";

describe("ticksBetween", () => {
  it("counts a dense schedule's ticks over days without walking each one (a downtime must not stall the server)", () => {
    const until = new Date("2026-11-23T12:00:00.000Z");
    const after = new Date(until.getTime() - 8 * 24 * 3600 * 1000);
    const { value, cpuMs } = cpuTimed(() =>
      ticksBetween({ cron: "* * * * * *", timezone: "Europe/Berlin" }, after, until, 100),
    );
    const { ticks, more } = value;
    expect(cpuMs).toBeLessThan(cpuPacedMs(1500));
    expect(ticks).toHaveLength(100);
    expect(ticks.at(-1)?.toISOString()).toBe(until.toISOString());
    expect(ticks[0]?.toISOString()).toBe("2026-11-23T11:58:21.000Z");
    expect(
      ticks.every((tick, i) => i === 0 || tick.getTime() - (ticks[i - 1]?.getTime() ?? 0) === 1000),
    ).toBe(true);
    const all = 8 * 24 * 3600;
    expect(Math.abs(more - (all - 100)) / all).toBeLessThan(0.01);
  });

  it("stays exact for a sparse schedule", () => {
    const until = new Date("2026-11-23T12:00:00.000Z");
    const after = new Date("2026-11-16T12:00:00.000Z");
    const { ticks, more } = ticksBetween({ cron: "0 3 * * 1-5", timezone: "Europe/Berlin" }, after, until, 2);
    expect(ticks.map((tick) => tick.toISOString())).toEqual([
      "2026-11-20T02:00:00.000Z",
      "2026-11-23T02:00:00.000Z",
    ]);
    expect(more).toBe(3);
  });
});
