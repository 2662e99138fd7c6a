import { afterEach, describe, expect, test } from "vitest";
import WebSocket from "ws";
import type { RunEvent } from "../src/core/events.js";
import { silentLogger } from "../src/core/logger.js";
import { runnerSocketPath, ServerMessage } from "../src/core/protocol.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { StepJobHandler } from "../src/runner/handlers/step.js";
import { RunnerDaemon } from "../src/runner/runner.js";
import { type RunningServer, startServer } from "../src/server/server.js";
import { testRunnerInfo } from "./helpers/runner-info.js";

/*
 * The server in this process: its real API (`app.inject()`), its real runner hub on a loopback
 * port, and runners in this process too (a real RunnerDaemon, or a bare socket speaking the
 * protocol). Nothing of runyard's own is mocked.
 */

const adminToken = "ryt_spine_admin_token_0123456789";
const auth = { authorization: `Bearer ${adminToken}` };
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(): Promise<RunningServer> {
  const running = await startServer({
    host: "127.0.0.1",
    port: 0,
    home: undefined,
    adminToken,
    // Leases long enough that a loaded machine stalling this process never expires one: these
    // tests end jobs by what runners say, not by silence.
    timings: { heartbeatMs: 500, leaseMs: 30_000 },
    reconnectGraceMs: 2000,
    logger: silentLogger,
    version: "test",
    warn: () => undefined,
  });
  cleanups.push(() => running.close());
  return running;
}

async function runner(running: RunningServer, id = "inproc"): Promise<RunnerDaemon> {
  const { secret } = await running.store.tokens.create({ kind: "runner", name: id });
  const executor = createExecutor({ baseEnv: { PATH: process.env.PATH ?? "" }, killGraceMs: 300 });
  cleanups.push(async () => executor.close());
  const daemon = new RunnerDaemon({
    serverUrls: [running.url],
    token: secret,
    info: testRunnerInfo({ id, capacity: 2 }),
    handlers: {
      step: new StepJobHandler(
        new LocalStepRunner(executor, {
          killGraceMs: 300,
        }),
      ),
    },
    logger: silentLogger,
  });
  await daemon.start();
  cleanups.push(() => daemon.stop(0));
  return daemon;
}

async function submit(running: RunningServer, workflow: string): Promise<string> {
  const response = await running.app.inject({
    method: "POST",
    url: "/api/runs",
    headers: auth,
    payload: { workflow },
  });
  expect(response.statusCode).toBe(201);
  return response.json<{ run_id: string }>().run_id;
}

/** Resolves with the run's events once its `run.finished` is stored. */
function finished(running: RunningServer, runId: string): Promise<RunEvent[]> {
  return new Promise((resolve) => {
    const done = async (): Promise<void> => {
      unsubscribe();
      resolve(await running.store.events.list(runId, { after: 0, limit: 10_000 }));
    };
    const unsubscribe = running.bus.subscribe(runId, (event) => {
      if (event.type === "run.finished") void done();
    });
    void running.store.events.list(runId, { after: 0, limit: 10_000 }).then((events) => {
      if (events.some((event) => event.type === "run.finished")) void done();
    });
  });
}

const twoSteps = `name: spine
inventory:
  hosts:
    a: {}
steps:
  - name: greet
    targets: [a]
    action: cmd.run
    args:
      cmd: echo hello from the runner
  - name: count
    targets: [a]
    action: shell.run
    args:
      script: |
        echo one
        echo two >&2
`;

describe("a run through the server and a runner in this process", () => {
  test("a workflow run goes from submit to success, its output stored as step.output events", async () => {
    const running = await server();
    await runner(running);
    const runId = await submit(running, twoSteps);
    const events = await finished(running, runId);

    const output = events.flatMap((e) =>
      e.type === "step.output" ? [`${e.step}/${e.stream}: ${e.data}`] : [],
    );
    expect(output.join("")).toContain("greet/stdout: hello from the runner\n");
    expect(output).toEqual(expect.arrayContaining(["count/stdout: one\n", "count/stderr: two\n"]));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events[0]?.type).toBe("run.queued");
    expect(events.find((e) => e.type === "run.started")).toMatchObject({ runner_id: "inproc" });

    const show = await running.app.inject({ method: "GET", url: `/api/runs/${runId}`, headers: auth });
    expect(show.json()).toMatchObject({ status: "success" });
  });

  test("the run record keeps each step's memory and CPU figures", async () => {
    const running = await server();
    await runner(running);
    const runId = await submit(running, twoSteps);
    await finished(running, runId);
    const record = await running.store.runs.get(runId);
    expect(record?.steps).toHaveLength(2);
    for (const step of record?.steps ?? []) {
      expect(step.status).toBe("success");
      expect(step.memory_peak_bytes).toEqual(expect.any(Number));
      expect(step.cpu_ms).toEqual(expect.any(Number));
    }
  });
});

interface RawRunner {
  send(message: object): void;
  /** The next message of `type` from the server (waits for it, by message, not by time). */
  next<T extends ServerMessage["type"]>(type: T): Promise<Extract<ServerMessage, { type: T }>>;
  close(): void;
}

/** A runner connection speaking the protocol by hand, for what a real daemon would never send. */
async function rawRunner(running: RunningServer, id: string, token?: string): Promise<RawRunner> {
  const secret = token ?? (await running.store.tokens.create({ kind: "runner", name: id })).secret;
  const socket = new WebSocket(new URL(runnerSocketPath, running.url.replace(/^http/, "ws")), {
    headers: { authorization: `Bearer ${secret}` },
  });
  cleanups.push(async () => socket.close());
  const inbox: ServerMessage[] = [];
  const waiters: Array<() => void> = [];
  socket.on("message", (data) => {
    inbox.push(ServerMessage.parse(JSON.parse(String(data))));
    for (const wake of waiters.splice(0)) wake();
  });
  await new Promise((resolve) => socket.once("open", resolve));
  const raw: RawRunner = {
    send: (message) => socket.send(JSON.stringify(message)),
    async next(type) {
      for (;;) {
        const index = inbox.findIndex((m) => m.type === type);
        if (index >= 0) return inbox.splice(index, 1)[0] as never;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    close: () => socket.close(),
  };
  raw.send({ type: "hello", runner: { id, hostname: id }, jobs: [] });
  await raw.next("welcome");
  return raw;
}

const oneStep = `name: held
inventory:
  hosts:
    a: {}
steps:
  - name: hold
    targets: [a]
    action: cmd.run
    args:
      cmd: "true"
`;

function stepResult(status: "success" | "canceled", exitCode: number | null) {
  return {
    kind: "step",
    status,
    exit_code: exitCode,
    exports: {},
    secret_exports: [],
    duration_ms: 1,
    memory_peak_bytes: 0,
    cpu_ms: 0,
    output_files: [],
    warnings: [],
  };
}

describe("the runner protocol against the real hub", () => {
  test("events a step job may not report are left out, and its batch is still acked", async () => {
    const running = await server();
    const raw = await rawRunner(running, "raw");
    const runId = await submit(running, twoSteps);
    const { job } = await raw.next("assign");
    expect(job.kind).toBe("step");
    expect(job.payload).toMatchObject({ run_id: runId, step: "greet", host: "a", attempt: 1 });
    raw.send({ type: "accept", job_id: job.job_id });
    raw.send({
      type: "events",
      job_id: job.job_id,
      batch: 1,
      events: [
        { type: "step.output", step: "greet", host: "a", stream: "stdout", data: "mine\n" },
        { type: "step.output", step: "count", host: "a", stream: "stdout", data: "not mine\n" },
        { type: "run.finished", status: "success" },
      ],
    });
    expect(await raw.next("ack")).toMatchObject({ job_id: job.job_id, batch: 1 });
    const stored = await running.store.events.list(runId, { after: 0, limit: 100 });
    expect(stored.flatMap((e) => (e.type === "step.output" ? [e.data] : []))).toEqual(["mine\n"]);
    expect(stored.some((e) => e.type === "run.finished")).toBe(false);
  });

  test("a batch sent twice is stored once and acked both times", async () => {
    const running = await server();
    const raw = await rawRunner(running, "twice");
    const runId = await submit(running, oneStep);
    const { job } = await raw.next("assign");
    raw.send({ type: "accept", job_id: job.job_id });
    const batch = {
      type: "events",
      job_id: job.job_id,
      batch: 1,
      events: [{ type: "step.output", step: "hold", host: "a", stream: "stdout", data: "once\n" }],
    };
    raw.send(batch);
    await raw.next("ack");
    raw.send(batch);
    await raw.next("ack");
    raw.send({ type: "finished", job_id: job.job_id, batches: 1, result: stepResult("success", 0) });
    await raw.next("done");
    const events = await finished(running, runId);
    expect(events.flatMap((e) => (e.type === "step.output" ? [e.data] : []))).toEqual(["once\n"]);
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "success" });
  });

  test("a job given back before it was accepted goes to another runner", async () => {
    const running = await server();
    const first = await rawRunner(running, "leaving");
    const runId = await submit(running, oneStep);
    const { job } = await first.next("assign");
    first.send({ type: "draining" });
    first.send({ type: "abandoned", job_id: job.job_id, reason: "the runner is shutting down" });
    await first.next("drop");
    await runner(running, "staying");
    const events = await finished(running, runId);
    expect(events.find((e) => e.type === "run.started")).toMatchObject({ runner_id: "staying" });
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "success" });
  });

  test("a runner that gives every job back without draining is not handed it again in a loop", async () => {
    const running = await server();
    const looping = await rawRunner(running, "looping");
    const runId = await submit(running, oneStep);
    let assigns = 0;
    const answering = (async () => {
      for (;;) {
        const { job } = await looping.next("assign");
        assigns += 1;
        looping.send({ type: "abandoned", job_id: job.job_id, reason: "not today" });
      }
    })();
    void answering;
    const events = await finished(running, runId);
    // Each give-back is a refusal: offered again after 1 s, then 2 s, and failed at the third.
    expect(assigns).toBe(3);
    const end = events.at(-1);
    expect(end).toMatchObject({ type: "run.finished", status: "failed" });
    const failed = events.find((e) => e.type === "step.finished");
    expect(JSON.stringify(failed)).toContain("JOB_REFUSED");
    expect(JSON.stringify(failed)).toContain("gave it back without draining: not today");
  });

  test("a runner that comes back without a job it held ends that job at once", async () => {
    const running = await server();
    const { secret } = await running.store.tokens.create({ kind: "runner", name: "forgetful" });
    const before = await rawRunner(running, "forgetful", secret);
    const runId = await submit(running, oneStep);
    const { job } = await before.next("assign");
    before.send({ type: "accept", job_id: job.job_id });
    before.close();
    await rawRunner(running, "forgetful", secret);
    const events = await finished(running, runId);
    expect(events.at(-1)).toMatchObject({
      type: "run.finished",
      status: "interrupted",
      error: { code: "RUNNER_LOST" },
    });
  });

  test("a report on a job leased to another runner is refused", async () => {
    const running = await server();
    const holder = await rawRunner(running, "holder");
    await submit(running, oneStep);
    const { job } = await holder.next("assign");
    holder.send({ type: "accept", job_id: job.job_id });
    const other = await rawRunner(running, "other");
    other.send({ type: "finished", job_id: job.job_id, batches: 0, result: stepResult("success", 0) });
    expect(await other.next("error")).toMatchObject({
      code: "FORBIDDEN",
      message: expect.stringContaining(`job ${job.job_id} is not leased to runner other`),
    });
  });

  test("canceling a run asks the runner to stop its job, and the run ends canceled", async () => {
    const running = await server();
    const raw = await rawRunner(running, "stopper");
    const runId = await submit(running, oneStep);
    const { job } = await raw.next("assign");
    raw.send({ type: "accept", job_id: job.job_id });
    await running.app.inject({ method: "POST", url: `/api/runs/${runId}/cancel`, headers: auth });
    expect(await raw.next("cancel")).toMatchObject({ job_id: job.job_id });
    raw.send({ type: "finished", job_id: job.job_id, batches: 0, result: stepResult("canceled", null) });
    const events = await finished(running, runId);
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "canceled" });
  });
});
