import { describe, expect, it } from "vitest";
import { pidsPerRun } from "./sandbox.js";

function warnings(): { warn: (fields: object, message: string) => void; said: string[] } {
  const said: string[] = [];
  return { said, warn: (_fields, message) => said.push(message) };
}

describe("pidsPerRun", () => {
  it("keeps RUNYARD_RUN_PIDS_MAX where the runs at once leave half the machine's process ids", () => {
    const logger = warnings();
    expect(pidsPerRun({ runPidsMax: 4096, capacity: 2 }, 32768, logger)).toBe(4096);
    expect(logger.said).toEqual([]);
  });

  it("holds each run to its share of half the table past that, and says why and what to change", () => {
    const logger = warnings();
    expect(pidsPerRun({ runPidsMax: 4096, capacity: 8 }, 32768, logger)).toBe(2048);
    expect(logger.said).toHaveLength(1);
    expect(logger.said[0]).toContain("at most 2048 processes, not RUNYARD_RUN_PIDS_MAX=4096");
    expect(logger.said[0]).toContain("raise kernel.pid_max, or lower the runner's capacity");
  });

  it("keeps the operator's figure where the machine's table cannot be read", () => {
    expect(pidsPerRun({ runPidsMax: 4096, capacity: 64 }, undefined, warnings())).toBe(4096);
  });
});
