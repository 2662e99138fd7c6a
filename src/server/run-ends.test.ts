import { describe, expect, it } from "vitest";
import { type FakeRunStates, sessionWithRunEnds } from "../../test/helpers/runner-session-fakes.js";
import type { RunEvent } from "../core/events.js";
import { EventBus } from "./event-bus.js";

/** Runs as the store has them: `ended` over, `live` running, `theirs` another tenant's. */
const states: FakeRunStates = {
  ended: { status: "success", tenant_id: "acme" },
  live: { status: "running", tenant_id: "acme" },
  theirs: { status: "failed", tenant_id: "other" },
  given: { status: "running", tenant_id: "acme" },
};

/** A session of a runner of tenant acme, on a hub whose RunEnds reads `states`; it is given job-1 of run `given`. */
function connect() {
  const queued = [
    {
      assignment: {
        job: { job_id: "job-1", kind: "step", payload: { run_id: "given" } },
        lease_expires_at: "",
      },
      nothingElseQueued: true,
    },
  ];
  return sessionWithRunEnds("acme", states, async () => queued.shift() as never);
}

describe("a run's end told to the runners keeping its folders", () => {
  it("answers a hello naming its kept runs with those already over, another tenant's as one not stored", async () => {
    const { socket, session, told } = connect();
    socket.receive({
      type: "hello",
      runner: { id: "r1", hostname: "h" },
      runs: ["ended", "live", "theirs", "gone"],
    });
    // A run no longer stored is over too; another tenant's is answered alike (nothing learned of it).
    await expect.poll(told).toEqual(["ended", "theirs", "gone"]);
    expect(socket.sent[0]).toMatchObject({ type: "welcome", run_ends: true });
    expect([...session.keeps]).toEqual(["live"]);
  });

  it("tells a run's end heard on the bus, or stored by another replica, once, to the runners keeping it", async () => {
    const { socket, session, ends, told } = connect();
    const bus = new EventBus();
    ends.start(bus);
    socket.receive({ type: "hello", runner: { id: "r1", hostname: "h" }, runs: ["live"] });
    await expect.poll(() => socket.sent.some((message) => message.type === "welcome")).toBe(true);
    // A step of another run is given it: its run is kept too.
    await session.fill();
    expect([...session.keeps].sort()).toEqual(["given", "live"]);
    const finished = {
      type: "run.finished",
      run_id: "live",
      seq: 9,
      status: "success",
    } as unknown as RunEvent;
    bus.publish([finished]);
    bus.publish([finished]);
    expect(told()).toEqual(["live"]);
    // The other replica's batch of a run still running says nothing; its end does.
    ends.storedElsewhere("given", 3);
    states.given = { status: "success", tenant_id: "acme" };
    ends.storedElsewhere("given", 4);
    await expect.poll(told).toEqual(["live", "given"]);
    states.given = { status: "running", tenant_id: "acme" };
    ends.stop();
  });

  it("sends nothing to a runner that names no kept runs (an older one knows no run_ended)", async () => {
    const { socket, session, ends, told } = connect();
    const bus = new EventBus();
    ends.start(bus);
    socket.receive({ type: "hello", runner: { id: "r1", hostname: "h" } });
    await expect.poll(() => socket.sent.some((message) => message.type === "welcome")).toBe(true);
    await session.fill();
    bus.publish([
      { type: "run.finished", run_id: "given", seq: 2, status: "success" } as unknown as RunEvent,
    ]);
    expect(told()).toEqual([]);
    ends.stop();
  });
});
