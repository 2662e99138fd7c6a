import { describe, expect, it } from "vitest";
import { silentLogger } from "../src/core/logger.js";
import type { JobQueue } from "../src/server/job-queue.js";
import { RunEnds } from "../src/server/run-ends.js";
import { RunnerSession } from "../src/server/runner-session.js";
import type { TokenRecord } from "../src/store/index.js";
import { FakeSocket, fakeSessionHost } from "./helpers/runner-session-fakes.js";

/**
 * Attacks on run_ended through a runner a member starts with their tenant's runner token: its
 * hello names run ids of its choosing (`runs`), and whatever the server answers is what it learns.
 */
const states: Record<string, { status: string; tenant_id: string | null }> = {
  mine: { status: "running", tenant_id: "acme" },
  "theirs-running": { status: "running", tenant_id: "other" },
  "theirs-ended": { status: "success", tenant_id: "other" },
  "platform-running": { status: "running", tenant_id: null },
};

function connect(tenant: string) {
  const token = { id: "tok_1", tenant_id: tenant, group: null } as unknown as TokenRecord;
  const queue = {
    leaseMs: 2000,
    inventory: async () => ({ resumed: new Map(), drop: [], cancel: [] }),
    claimFor: async () => undefined,
  } as unknown as JobQueue;
  const sessions: RunnerSession[] = [];
  const store = {
    runs: { state: async (id: string) => (states[id] ? { id, last_seq: 1, ...states[id] } : undefined) },
    events: { list: async () => [] },
  };
  const ends = new RunEnds(store as never, () => sessions, silentLogger);
  const host = fakeSessionHost(
    queue,
    {
      register: (session) => void sessions.push(session),
      checkRuns: (session, runIds) => ends.check([session], runIds),
    },
    token,
  );
  const socket = new FakeSocket();
  const session = new RunnerSession(socket as never, token, host);
  const told = () =>
    socket.sent
      .filter((message) => message.type === "run_ended")
      .map((message) => String(message.run_id))
      .sort();
  return { socket, session, told };
}

describe("run_ended attacks by a tenant's runner", () => {
  it("learns nothing of whether another tenant's run (or a platform admin's) exists or is over: answered as a run never stored", async () => {
    const { socket, session, told } = connect("acme");
    socket.receive({
      type: "hello",
      runner: { id: "r1", hostname: "h" },
      runs: ["mine", "theirs-running", "theirs-ended", "platform-running", "never-stored"],
    });
    // Every id but its own running run is checked and answered alike.
    await expect.poll(() => [...session.keeps]).toEqual(["mine"]);
    expect(told()).toEqual(["never-stored", "platform-running", "theirs-ended", "theirs-running"]);
  });
});
