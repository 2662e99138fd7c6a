import { describe, expect, it } from "vitest";
import { durationTicks } from "./src/charts/scale.js";
import { formatTick } from "./src/pages/runs/durations.js";

describe("a run timeline's tick labels", () => {
  it("say each tick's own time: an axis of 500 ms steps past 1 s keeps the half seconds", () => {
    expect(durationTicks(2300).ticks.map(formatTick)).toEqual([
      "0 ms",
      "500 ms",
      "1 s",
      "1.5 s",
      "2 s",
      "2.5 s",
    ]);
    expect(durationTicks(900).ticks.map(formatTick)).toEqual([
      "0 ms",
      "200 ms",
      "400 ms",
      "600 ms",
      "800 ms",
      "1 s",
    ]);
    expect(formatTick(1200)).toBe("1.2 s");
  });

  it("are whole seconds, minutes and hours on longer axes", () => {
    expect(durationTicks(9300).ticks.map(formatTick)).toEqual(["0 ms", "2 s", "4 s", "6 s", "8 s", "10 s"]);
    expect(formatTick(90_000)).toBe("1 min 30 s");
  });
});
