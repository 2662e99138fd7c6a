import { describe, expect, it } from "vitest";
import { type FakeRunStates, sessionWithRunEnds } from "./helpers/runner-session-fakes.js";

/**
 * Attacks on run_ended through a runner a member starts with their tenant's runner token: its
 * hello names run ids of its choosing (`runs`), and whatever the server answers is what it learns.
 */
const states: FakeRunStates = {
  mine: { status: "running", tenant_id: "acme" },
  "theirs-running": { status: "running", tenant_id: "other" },
  "theirs-ended": { status: "success", tenant_id: "other" },
  "platform-running": { status: "running", tenant_id: null },
};

describe("run_ended attacks by a tenant's runner", () => {
  it("learns nothing of whether another tenant's run (or a platform admin's) exists or is over: answered as a run never stored", async () => {
    const { socket, session, told } = sessionWithRunEnds("acme", states);
    socket.receive({
      type: "hello",
      runner: { id: "r1", hostname: "h" },
      runs: ["mine", "theirs-running", "theirs-ended", "platform-running", "never-stored"],
    });
    // Every id but its own running run is checked and answered alike.
    await expect.poll(() => [...session.keeps]).toEqual(["mine"]);
    expect(told().sort()).toEqual(["never-stored", "platform-running", "theirs-ended", "theirs-running"]);
  });
});
