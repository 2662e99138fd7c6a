import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { testRunnerInfo } from "../../test/helpers/runner-info.js";
import type { StepJob, StepJobResult } from "../core/jobs/step.js";
import { silentLogger } from "../core/logger.js";
import type { JobHandler, JobIo } from "./handlers/types.js";
import { RunnerDaemon } from "./runner.js";
import { WorkSlots } from "./work-slots.js";

/*
 * A job the server dropped may still have processes alive (a step that ignores SIGTERM lives until
 * the kill grace ends), while the server already counts its slot free and assigns the next job.
 * The runner starts that next job only once the dropped one's processes are gone.
 */

const cleanups: Array<() => Promise<unknown> | undefined> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("WorkSlots", () => {
  it("holds up to its capacity, and hands a freed slot to the job that waited longest", async () => {
    const slots = new WorkSlots(1);
    expect(slots.tryTake("a")).toBe(true);
    expect(slots.tryTake("b")).toBe(false);
    const order: string[] = [];
    const first = slots.take("b").then(() => order.push("b"));
    const second = slots.take("c").then(() => order.push("c"));
    expect([slots.waits("a"), slots.waits("b"), slots.waits("c")]).toEqual([false, true, true]);
    slots.free("a");
    slots.free("a"); // once per job: a second call frees nothing
    await first;
    expect(order).toEqual(["b"]);
    expect(slots.held).toBe(1);
    expect([slots.waits("b"), slots.waits("c")]).toEqual([false, true]);
    slots.free("b");
    await second;
    expect(order).toEqual(["b", "c"]);
    slots.free("c");
    expect(slots.held).toBe(0);
  });

  it("frees a dropped job's slot when the wait for its processes runs out, once", async () => {
    const slots = new WorkSlots(1, 20);
    slots.tryTake("stuck");
    const late: string[] = [];
    slots.dropped("stuck", { ...silentLogger, warn: (fields: { jobId: string }) => late.push(fields.jobId) });
    await slots.take("next");
    expect(late).toEqual(["stuck"]);
    // Its processes ending later free nothing more: the slot is the next job's.
    slots.free("stuck");
    expect(slots.held).toBe(1);
  });
});

/** A promise and what resolves it (Node 20 has no `Promise.withResolvers`). */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** A step job as the server assigns it. */
function stepJob(id: string): Record<string, unknown> {
  return {
    job_id: id,
    kind: "step",
    payload: {
      run_id: `run-${id}`,
      step: "s",
      host: "h",
      attempt: 1,
      action: "cmd.run",
      script: "true",
      env: {},
    },
  };
}

/** A scripted server: welcomes the runner, then sends what the test says and records what it answers. */
async function scriptedServer() {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(wss, "listening");
  cleanups.push(() => new Promise((resolve) => wss.close(resolve)));
  const received: Array<Record<string, unknown>> = [];
  const heard: Array<() => void> = [];
  let socket: WebSocket | undefined;
  const connected = new Promise<void>((resolve) => {
    wss.on("connection", (ws) => {
      socket = ws;
      ws.on("message", (raw) => {
        const message = JSON.parse(String(raw)) as Record<string, unknown>;
        received.push(message);
        if (message.type === "hello") {
          ws.send(
            JSON.stringify({ type: "welcome", runner_id: "r", heartbeat_ms: 60_000, lease_ms: 120_000 }),
          );
          resolve();
        }
        if (message.type === "finished") ws.send(JSON.stringify({ type: "done", job_id: message.job_id }));
        for (const check of heard.splice(0)) check();
      });
    });
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connected,
    received,
    send: (message: Record<string, unknown>) => socket?.send(JSON.stringify(message)),
    /** Resolves once the runner said something that `match` holds for. */
    answer: (match: (message: Record<string, unknown>) => boolean): Promise<void> =>
      new Promise((resolve) => {
        const check = () => (received.some(match) ? resolve() : heard.push(check));
        check();
      }),
  };
}

/**
 * A runner of capacity 1 linked to `server`, whose step handler starts "j1" as a job whose
 * processes ignore the drop's abort until `endFirst` is called; any other job ends at once.
 */
async function runnerOfOne(server: Awaited<ReturnType<typeof scriptedServer>>, droppedSlotMs?: number) {
  const started: string[] = [];
  let endFirst: (result: StepJobResult) => void = () => {};
  let firstIo: JobIo | undefined;
  const firstStarted = signal();
  const secondStarted = signal();
  const step: JobHandler<"step"> = {
    run(job: StepJob, io: JobIo) {
      started.push(job.job_id);
      if (job.job_id === "j1") {
        firstIo = io;
        firstStarted.resolve();
        return new Promise((resolve) => {
          endFirst = resolve;
        });
      }
      secondStarted.resolve();
      return Promise.resolve({ kind: "step", status: "success", exit_code: 0 } as StepJobResult);
    },
  };
  const runner = new RunnerDaemon({
    serverUrls: [server.url],
    token: "ryt_dropped_jobs_token_0123456789",
    info: testRunnerInfo({ id: "r" }),
    handlers: { step },
    logger: silentLogger,
    ...(droppedSlotMs === undefined ? {} : { droppedSlotMs }),
  });
  cleanups.push(() => {
    endFirst({ kind: "step", status: "canceled", exit_code: null } as StepJobResult);
    return runner.stop(0);
  });
  await runner.start();
  await server.connected;
  return {
    runner,
    started,
    firstStarted,
    secondStarted,
    endFirst: (result: StepJobResult) => endFirst(result),
    /** Output of j1's step, as its handler reports it. */
    firstPrints: (data: string) =>
      firstIo?.emit({ type: "step.output", step: "s", host: "h", stream: "stdout", data }),
  };
}

/**
 * j1 assigned and started, dropped, then j2 assigned; returns once the runner has taken j2's
 * assign up (it handles the server's messages in order: a cancel sent after it is answered after).
 */
async function dropFirstThenAssign(
  server: Awaited<ReturnType<typeof scriptedServer>>,
  firstStarted: Promise<unknown>,
): Promise<void> {
  server.send({ type: "assign", job: stepJob("j1"), lease_expires_at: new Date().toISOString() });
  await firstStarted;
  server.send({ type: "drop", job_id: "j1" });
  server.send({ type: "assign", job: stepJob("j2"), lease_expires_at: new Date().toISOString() });
  server.send({ type: "cancel", job_id: "probe" });
  await server.answer((message) => message.type === "abandoned" && message.job_id === "probe");
}

describe("a runner's capacity with a dropped job still running", () => {
  it("starts the next job only once the dropped job's processes are gone", async () => {
    const server = await scriptedServer();
    const { runner, started, firstStarted, secondStarted, endFirst, firstPrints } = await runnerOfOne(server);

    await dropFirstThenAssign(server, firstStarted.promise);
    // The dropped job's step prints on; the next probe's answer comes after what that sent.
    firstPrints("after the drop\n");
    server.send({ type: "cancel", job_id: "probe-2" });
    await server.answer((message) => message.type === "abandoned" && message.job_id === "probe-2");
    expect(started).toEqual(["j1"]);
    expect(runner.runningJobs).toBe(2);
    // j2 is accepted when it starts, not while it waits: its step's start is stored as it runs.
    expect(server.received.filter((message) => message.job_id === "j2")).toEqual([]);
    // Nothing more of the dropped job: the server would refuse it.
    expect(server.received.filter((message) => message.type === "events")).toEqual([]);

    endFirst({ kind: "step", status: "canceled", exit_code: null } as StepJobResult);
    await secondStarted.promise;
    expect(started).toEqual(["j1", "j2"]);
    await server.answer((message) => message.type === "accept" && message.job_id === "j2");
  });

  it("gives back, at its shutdown, a job that waited for a dropped job's processes, saying so, and never starts it", async () => {
    const server = await scriptedServer();
    const { runner, started, firstStarted, endFirst } = await runnerOfOne(server);

    await dropFirstThenAssign(server, firstStarted.promise);
    const stopped = runner.stop(30_000);
    await server.answer((message) => message.type === "abandoned" && message.job_id === "j2");
    expect(server.received.find((message) => message.job_id === "j2")).toMatchObject({
      type: "abandoned",
      reason: expect.stringContaining("it waited for a dropped job's processes to end on this runner"),
    });
    // The dropped job's processes end during the shutdown: its slot frees, and j2 still does not start.
    endFirst({ kind: "step", status: "canceled", exit_code: null } as StepJobResult);
    await stopped;
    expect(started).toEqual(["j1"]);
  });

  it("starts the next job anyway once a dropped job's processes outlive the wait for them", async () => {
    const server = await scriptedServer();
    const { started, firstStarted, secondStarted } = await runnerOfOne(server, 100);

    server.send({ type: "assign", job: stepJob("j1"), lease_expires_at: new Date().toISOString() });
    await firstStarted.promise;
    server.send({ type: "drop", job_id: "j1" });
    server.send({ type: "assign", job: stepJob("j2"), lease_expires_at: new Date().toISOString() });
    // j1 never ends here: its slot is given up after the wait.
    await secondStarted.promise;
    expect(started).toEqual(["j1", "j2"]);
  });
});
