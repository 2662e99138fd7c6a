import { describe, expect, it } from "vitest";
import { type ListedRunner, waitingLines } from "./queue-wait.js";

const runner = (over: Partial<ListedRunner>): ListedRunner => ({
  id: "r",
  group: "default",
  state: "idle",
  labels: [],
  capacity: 1,
  running_jobs: [],
  ...over,
});
const gpu = { host: "trainer", group: "gpu", labels: ["cuda", "a100"] };

describe("waitingLines", () => {
  it("names the group and labels, and counts the online runners none of which match", () => {
    const runners = [runner({ id: "a" }), runner({ id: "b", group: "gpu" }), runner({ state: "offline" })];
    expect(waitingLines([gpu], runners)).toEqual([
      "queued: waiting for a runner in group gpu with labels [cuda,a100] (2 runners online, none matching)",
    ]);
  });

  it("says when no runner is online at all", () => {
    expect(waitingLines([{ host: "any", group: null, labels: [] }], [])).toEqual([
      "queued: waiting for a runner in any group (no runners online)",
    ]);
  });

  it("says when every matching runner is full", () => {
    const busy = runner({ group: "gpu", labels: ["cuda", "a100", "x"], running_jobs: ["job"] });
    expect(waitingLines([gpu], [busy])).toEqual([
      "queued: waiting for a runner in group gpu with labels [cuda,a100] (1 matching runner online, all busy)",
    ]);
  });

  it("says nothing when a matching runner has room, and once per distinct need", () => {
    const free = runner({ group: "gpu", labels: ["a100", "cuda"], capacity: 2, running_jobs: ["job"] });
    expect(waitingLines([gpu, { ...gpu, host: "other" }], [free])).toEqual([]);
    expect(waitingLines([gpu, { ...gpu, host: "other" }], [])).toHaveLength(1);
  });
});
