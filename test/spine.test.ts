import { afterEach, describe, expect, test } from "vitest";
import WebSocket from "ws";
import type { RunEvent } from "../src/core/events.js";
import { silentLogger } from "../src/core/logger.js";
import { runnerSocketPath, ServerMessage } from "../src/core/protocol.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { ProcessExecutor } from "../src/exec/process.js";
import { StepJobHandler } from "../src/runner/handlers/step.js";
import { RunnerDaemon } from "../src/runner/runner.js";
import { type RunningServer, startServer } from "../src/server/server.js";

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
    timings: { heartbeatMs: 300, leaseMs: 2000 },
    reconnectGraceMs: 2000,
    logger: silentLogger,
    version: "test",
    warn: () => undefined,
  });
  cleanups.push(() => running.close());
  return running;
}

async function runner(running: RunningServer, id = "inproc"): Promise<RunnerDaemon> {
  const { secret } = await running.store.createToken({ kind: "runner", name: id });
  const daemon = new RunnerDaemon({
    serverUrl: running.url,
    token: secret,
    info: {
      id,
      group: "default",
      labels: [],
      mode: "all",
      capacity: 2,
      cpus: null,
      memory: null,
      hostname: "test",
      tenant_id: null,
      version: null,
    },
    handlers: {
      step: new StepJobHandler(
        new LocalStepRunner(new ProcessExecutor(), {
          baseEnv: { PATH: process.env.PATH ?? "" },
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
      resolve(await running.store.listEvents(runId, { after: 0, limit: 10_000 }));
    };
    const unsubscribe = running.bus.subscribe(runId, (event) => {
      if (event.type === "run.finished") void done();
    });
    void running.store.listEvents(runId, { after: 0, limit: 10_000 }).then((events) => {
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
    const record = await running.store.getRun(runId);
    expect(record?.steps).toHaveLength(2);
    for (const step of record?.steps ?? []) {
      expect(step.status).toBe("success");
      expect(step.memory_peak_bytes).toEqual(expect.any(Number));
      expect(step.cpu_ms).toEqual(expect.any(Number));
    }
  });
});

describe("the runner protocol against the real hub", () => {
  test("events a step job may not report are left out, and its batch is still acked", async () => {
    const running = await server();
    const { secret } = await running.store.createToken({ kind: "runner", name: "raw" });
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
    const next = async <T extends ServerMessage["type"]>(
      type: T,
    ): Promise<Extract<ServerMessage, { type: T }>> => {
      for (;;) {
        const index = inbox.findIndex((m) => m.type === type);
        if (index >= 0) return inbox.splice(index, 1)[0] as Extract<ServerMessage, { type: T }>;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ type: "hello", runner: { id: "raw", hostname: "raw" }, jobs: [] }));
    await next("welcome");

    const runId = await submit(running, twoSteps);
    const { job } = await next("assign");
    expect(job.kind).toBe("step");
    expect(job.payload).toMatchObject({ run_id: runId, step: "greet", host: "a", attempt: 1 });
    socket.send(JSON.stringify({ type: "accept", job_id: job.job_id }));
    socket.send(
      JSON.stringify({
        type: "events",
        job_id: job.job_id,
        batch: 1,
        events: [
          { type: "step.output", step: "greet", host: "a", stream: "stdout", data: "mine\n" },
          { type: "step.output", step: "count", host: "a", stream: "stdout", data: "not mine\n" },
          { type: "run.finished", status: "success" },
        ],
      }),
    );
    expect(await next("ack")).toMatchObject({ job_id: job.job_id, batch: 1 });
    const stored = await running.store.listEvents(runId, { after: 0, limit: 100 });
    expect(stored.flatMap((e) => (e.type === "step.output" ? [e.data] : []))).toEqual(["mine\n"]);
    expect(stored.some((e) => e.type === "run.finished")).toBe(false);
  });
});
