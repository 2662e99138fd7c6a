import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { FakeSocket, fakeSessionHost, fakeToken as token } from "../../test/helpers/runner-session-fakes.js";
import type { JobQueue } from "./job-queue.js";
import { RunnerHub } from "./runner-hub.js";
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

describe("a runner session's writes", () => {
  it("writes what one turn of the event loop sends in one write, and a later turn's in another", async () => {
    // The socket under the link, as Node's net.Socket takes corked writes: one writev for all.
    const writes: string[][] = [];
    const wire = new Writable({
      write(chunk: Buffer, _encoding, done) {
        writes.push([String(chunk)]);
        done();
      },
      writev(chunks, done) {
        writes.push(chunks.map(({ chunk }) => String(chunk)));
        done();
      },
    });
    // A WebSocket writes each message's frame to its socket as it is sent.
    class WiredSocket extends FakeSocket {
      override send(data: string): void {
        super.send(data);
        wire.write(data);
      }
    }
    const session = new RunnerSession(
      new WiredSocket() as never,
      token,
      fakeSessionHost({} as JobQueue),
      wire,
    );
    session.send({ type: "done", job_id: "job-1" });
    session.send({ type: "run_ended", run_id: "run-1" });
    expect(writes).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    session.send({ type: "heartbeat" });
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.map((write) => write.map((data) => (JSON.parse(data) as { type: string }).type))).toEqual([
      ["done", "run_ended"],
      ["heartbeat"],
    ]);
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
    const queued = [{ assignment: { job: { job_id: "job-new", kind: "step" } }, nothingElseQueued: false }];
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

describe("offering a runner work", () => {
  /**
   * A real RunnerHub over a queue whose claims hand out `queued` (then "nothing queued", or "no
   * room" while `room()` says a kind lacks it), counting them, and one runner's session on it.
   */
  async function hubWithRunner(room: () => boolean = () => true, more: Partial<JobQueue> = {}) {
    const queued: { assignment: { job: { job_id: string; kind: string } }; nothingElseQueued: boolean }[] =
      [];
    let claims = 0;
    const held: string[][] = [];
    const queue = {
      leaseMs: 2000,
      inventory: async () => ({ resumed: new Map([["job-held", "step"]]), drop: [], cancel: [] }),
      claimFor: async (_runner: unknown, holding: readonly string[]) => {
        claims += 1;
        held.push([...holding]);
        return queued.shift() ?? (room() ? "nothing queued" : "no room");
      },
      ...more,
    } as unknown as JobQueue;
    const host = fakeSessionHost(queue);
    const hub = new RunnerHub(
      { ...host.store, bots: {}, botHistory: {} } as never,
      queue,
      { heartbeatMs: host.heartbeatMs, leaseMs: 2000 },
      host.logger,
      {
        id: "replica-1",
        installId: "install-1",
        isLeader: () => true,
      },
    );
    const socket = new FakeSocket();
    hub.accept(socket as never, token);
    socket.receive({
      type: "hello",
      runner: { id: "r1", hostname: "h" },
      jobs: [{ id: "job-held", batch: 0 }],
    });
    await expect.poll(() => socket.sent.map((message) => message.type)).toContain("welcome");
    // The hello's own dispatch asked once.
    await expect.poll(() => claims).toBe(1);
    return { hub, queued, socket, claims: () => claims, held };
  }

  it("asks the store again at a job's end only when the queue changed since it last found nothing", async () => {
    const { hub, queued, socket, claims } = await hubWithRunner();
    // A job of its ended: more room, no new work. The claim a fill makes is made at once, in the
    // dispatch's first turn, so none made now is none made.
    hub.dispatch("room");
    expect(claims()).toBe(1);
    // A job queued: asked, handed out, and asked again for more (nothing).
    queued.push({ assignment: { job: { job_id: "job-new", kind: "step" } }, nothingElseQueued: false });
    hub.dispatch();
    await expect.poll(() => socket.sent.map((message) => message.type)).toContain("assign");
    await expect.poll(claims).toBe(3);
    hub.dispatch("room");
    expect(claims()).toBe(3);
  });

  it("asks no more after a claim that found no other job for it, until the queue changes", async () => {
    const { hub, queued, socket, claims } = await hubWithRunner();
    queued.push({ assignment: { job: { job_id: "job-only", kind: "step" } }, nothingElseQueued: true });
    hub.dispatch();
    await expect.poll(() => socket.sent.filter((message) => message.type === "assign")).toHaveLength(1);
    // The claim that handed it out said nothing else waited: no claim to find nothing.
    expect(claims()).toBe(2);
    hub.dispatch("room");
    expect(claims()).toBe(2);
    // The queue changed: asked again.
    queued.push({ assignment: { job: { job_id: "job-next", kind: "step" } }, nothingElseQueued: true });
    hub.dispatch();
    await expect.poll(() => socket.sent.filter((message) => message.type === "assign")).toHaveLength(2);
    expect(claims()).toBe(3);
  });

  it("asks again at a job's end when its last claim lacked room for a kind it runs", async () => {
    let roomForAll = false;
    const { hub, claims } = await hubWithRunner(() => roomForAll);
    roomForAll = true;
    hub.dispatch("room");
    expect(claims()).toBe(2);
    // Now it found nothing with room for everything: a second end asks no more.
    await expect.poll(claims).toBe(2);
    hub.dispatch("room");
    hub.dispatch("room");
    expect(claims()).toBe(2);
  });

  it("frees a job's room when a report finds it ended meanwhile, as the runner forgets it on the drop", async () => {
    // A parked run canceled while its runner took the job up ends the job in the store at once; the
    // runner's first batch then finds it ended, and after the drop it never says `finished`.
    let roomForAll = false;
    const { socket, claims, held } = await hubWithRunner(() => roomForAll, {
      events: async () => "unknown",
    });
    roomForAll = true;
    socket.receive({
      type: "events",
      job_id: "job-held",
      batch: 1,
      events: [{ type: "step.output", step: "s", host: "h", stream: "stdout", data: "began\n" }],
    });
    await expect.poll(() => socket.sent.map((message) => message.type)).toContain("drop");
    await expect.poll(claims).toBe(2);
    expect(held).toEqual([["step"], []]);
  });
});
