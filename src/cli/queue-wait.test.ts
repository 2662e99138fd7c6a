import { describe, expect, it } from "vitest";
import { type RunnerNeed, waitingLines } from "./queue-wait.js";

const need = (over: Partial<RunnerNeed>): RunnerNeed => ({
  host: "worker",
  group: null,
  labels: [],
  tenant_id: null,
  reason: null,
  ...over,
});

describe("waitingLines", () => {
  it("prints the server's reason for each need no runner takes now", () => {
    const reason =
      "waiting for a runner of tenant acme in group linux: 1 runner online, none of tenant acme and none shared (start one with a runner token of tenant acme, or mark a runner --shared)";
    expect(waitingLines([need({ tenant_id: "acme", group: "linux", reason })])).toEqual([
      `queued: ${reason}`,
    ]);
  });

  it("says nothing for a need a runner with room takes, and a reason shared by hosts once", () => {
    expect(waitingLines([need({})])).toEqual([]);
    const reason = "waiting for a runner outside any tenant in any group: no runners online (start one)";
    expect(waitingLines([need({ reason }), need({ host: "other", reason })])).toEqual([`queued: ${reason}`]);
  });
});
