import { describe, expect, it } from "vitest";
import { FakeSocket, fakeSessionHost, fakeToken as token } from "../../test/helpers/runner-session-fakes.js";
import type { JobQueue } from "./job-queue.js";
import { RunnerSession } from "./runner-session.js";

describe("a runner's session", () => {
  it("renews its leases on a heartbeat while a batch before it still waits on the store", async () => {
    let release = (): void => {};
    const stalled = new Promise<void>((resolve) => {
      release = resolve;
    });
    const renewed: string[][] = [];
    const queue = {
      leaseMs: 2000,
      inventory: async () => ({ resumed: new Map([["job-1", "step"]]), drop: [], cancel: [] }),
      // The store is slow: the batch's append takes longer than a lease.
      events: async () => {
        await stalled;
        return "stored";
      },
      renew: async (_runnerId: string, jobIds: readonly string[]) => {
        renewed.push([...jobIds]);
      },
    } as unknown as JobQueue;
    const host = fakeSessionHost(queue);
    const socket = new FakeSocket();
    new RunnerSession(socket as never, token, host);
    socket.receive({
      type: "hello",
      runner: { id: "r1", hostname: "h" },
      jobs: [{ id: "job-1", batch: 0 }],
    });
    await expect.poll(() => socket.sent.some((message) => message.type === "welcome")).toBe(true);

    socket.receive({
      type: "events",
      job_id: "job-1",
      batch: 1,
      events: [{ type: "step.output", step: "s", host: "h", stream: "stdout", data: "x\n" }],
    });
    socket.receive({ type: "heartbeat", bots: [] });
    await expect.poll(() => renewed).toEqual([["job-1"]]);
    expect(socket.sent.filter((message) => message.type === "heartbeat")).toHaveLength(1);
    expect(socket.sent.some((message) => message.type === "ack")).toBe(false);

    release();
    await expect.poll(() => socket.sent.some((message) => message.type === "ack")).toBe(true);
  });
});

describe("a runner's hello", () => {
  it("offers the runner no work until its inventory is taken and the welcome sent", async () => {
    // A dispatch while the inventory was still being taken assigned a job the inventory did not
    // list; it then gave that job back to the queue as never received, and a second runner ran
    // the step the first had begun.
    let inventoryTaken = (): void => {};
    const inventoryGate = new Promise<void>((resolve) => {
      inventoryTaken = resolve;
    });
    let inventoryAsked = (): void => {};
    const asked = new Promise<void>((resolve) => {
      inventoryAsked = resolve;
    });
    const queued = [{ job: { job_id: "job-new", kind: "step" } }];
    const queue = {
      leaseMs: 2000,
      inventory: async () => {
        inventoryAsked();
        await inventoryGate;
        return { resumed: new Map(), drop: [], cancel: [] };
      },
      claimFor: async () => queued.shift(),
    } as unknown as JobQueue;
    let session!: RunnerSession;
    const host = fakeSessionHost(queue, { dispatch: () => void session.fill() });
    const socket = new FakeSocket();
    session = new RunnerSession(socket as never, token, host);
    socket.receive({ type: "hello", runner: { id: "r1", hostname: "h" }, jobs: [] });
    await asked;
    // A job is queued while the inventory is taken: the server's dispatch asks every session.
    await session.fill();
    expect(socket.sent.map((message) => message.type)).toEqual([]);

    inventoryTaken();
    await expect.poll(() => socket.sent.map((message) => message.type)).toEqual(["welcome", "assign"]);
  });
});
