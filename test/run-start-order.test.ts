import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  isFinal,
  type Proc,
  type RunView,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/**
 * A run starts when a runner takes up its first job: a client never sees a step start before its
 * run has, nor a step running while the run still waits for a runner.
 */

let server: TestServer;
const procs: Proc[] = [];

beforeAll(async () => {
  server = await startTestServer();
}, 60_000);

afterAll(async () => {
  for (const proc of procs) await proc.kill();
  await server?.proc.kill();
});

const workflow = `
version: v0.1
name: ordered
inventory:
  hosts:
    worker: {group: order-test}
steps:
  - name: first
    targets: [worker]
    action: shell.run
    args:
      script: echo one
  - name: second
    targets: [worker]
    action: shell.run
    args:
      script: echo two
`;

describe("the order of a run's start", () => {
  it("says run.started before any step.started, and shows no step running while the run is queued", async () => {
    const runId = await submit(server.url, workflow);
    // No runner of the group yet: the first step's job waits in the queue.
    const waiting = await waitForRun(
      server.url,
      runId,
      (run) => ((run as RunView & { waiting_for?: unknown[] }).waiting_for ?? []).length > 0,
    );
    expect(waiting.status).toBe("queued");
    expect(waiting.steps).toEqual([]);

    const token = await runnerToken(server.url, "order-test");
    procs.push(await startRunner(server.url, token, { id: "order-runner", group: "order-test" }));
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("success");

    const types = (await readEvents(server.url, runId)).map((event) =>
      "step" in event ? `${event.type}:${event.step}` : event.type,
    );
    const runStarted = types.indexOf("run.started");
    expect(runStarted).toBeGreaterThan(types.indexOf("run.queued"));
    expect(types.indexOf("step.started:first")).toBeGreaterThan(runStarted);
    expect(types.indexOf("step.started:second")).toBeGreaterThan(types.indexOf("step.finished:first"));
    expect(types.filter((type) => type === "run.started")).toHaveLength(1);
  });
});
