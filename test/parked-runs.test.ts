import { afterEach, describe, expect, inject, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { tempDir } from "./helpers/cli.js";
import { startInProcessServer } from "./helpers/in-process.js";
import { expectNothingRan, gauge, waitForParked } from "./helpers/parked-runs.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/**
 * A workflow run that waits for a runner is parked: its engine is dropped, and the run lives on
 * as its stored rows (the run, `run.queued`, its first job) until a runner takes up the job. Then
 * the engine starts again from the store. These tests hold that a parked run ends as any run
 * does, every event once and in order, whichever replica the runner reaches.
 */

const adminUrl = inject("postgresAdminUrl");
const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

const workflow = (group: string): string => `
version: v0.1
name: parked
inventory:
  hosts:
    worker: {group: ${group}}
steps:
  - name: first
    targets: [worker]
    action: shell.run
    args:
      script: echo "one $RUNYARD_RUN_ID"
  - name: second
    targets: [worker]
    action: shell.run
    args:
      script: echo two
`;

/** The events a run's stream shows, as `type` or `type:step`. */
function shape(events: readonly RunEvent[]): string[] {
  return events.map((event) => ("step" in event && event.step ? `${event.type}:${event.step}` : event.type));
}

function expectWholeRun(events: readonly RunEvent[], runId: string): void {
  expect(shape(events)).toEqual([
    "run.queued",
    "run.started",
    "step.started:first",
    "step.output:first",
    "step.finished:first",
    "step.started:second",
    "step.output:second",
    "step.finished:second",
    "run.finished",
  ]);
  expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
  const output = events.find((event) => event.type === "step.output");
  expect(output?.type === "step.output" && output.data).toBe(`one ${runId}\n`);
}

async function submitAll(url: string, group: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await submit(url, workflow(group)));
  return ids;
}

describe("runs parked while they wait for a runner", () => {
  it("keeps 30 waiting runs as rows, cancels one of them, and runs the rest once a runner comes", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    const ids = await submitAll(server.url, "parked-group", 30);
    await waitForParked(server.url, 30);
    expect(await gauge(server.url, "runyard_replica_runs_carried")).toBe(30);

    // Canceled while parked: its queued job ends with it, and no runner ever takes it up.
    const [canceled, ...rest] = ids as [string, ...string[]];
    const answer = await api<{ status: string }>(server.url, "POST", `/api/runs/${canceled}/cancel`);
    expect(answer.status).toBe(200);
    expect((await waitForRun(server.url, canceled, isFinal)).status).toBe("canceled");

    const token = await runnerToken(server.url, "parked-group");
    started.push(
      await startRunner(server.url, token, { id: "parked-runner", group: "parked-group", capacity: 4 }),
    );
    for (const runId of rest) {
      expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
      expectWholeRun(await readEvents(server.url, runId), runId);
    }
    expectNothingRan(await readEvents(server.url, canceled));
    await waitForParked(server.url, 0);
    expect(await gauge(server.url, "runyard_replica_runs_carried")).toBe(0);
  }, 90_000);

  it("ends a parked run canceled, not failed, however long the read of its cancel request takes", async () => {
    // In this process, so the store's read of the run's cancel request can take as long as on a
    // loaded database: the engine started again for the cancel found the job the cancel had ended
    // and ended the run failed (CANCELED), with its rollbacks and failure handlers, before that
    // read aborted it; and the member who canceled got 409 (run D, on a busy machine).
    const server = await startInProcessServer({ adminToken });
    try {
      const { fleet } = server.store;
      const read = fleet.cancelRequested.bind(fleet);
      fleet.cancelRequested = async (runId) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return read(runId);
      };
      const [runId] = (await submitAll(server.url, "parked-slow-read", 1)) as [string];
      await waitForParked(server.url, 1);
      const answer = await api<{ status: string }>(server.url, "POST", `/api/runs/${runId}/cancel`);
      expect(answer.status).toBe(200);
      expect(await waitForRun(server.url, runId, isFinal)).toMatchObject({ status: "canceled" });
      expectNothingRan(await readEvents(server.url, runId));
    } finally {
      await server.close();
    }
  });

  it.skipIf(!adminUrl)(
    "runs on a runner of replica B the runs parked on replica A, and cancels through B one parked on A",
    async () => {
      const databaseUrl = await createTestDatabase(adminUrl ?? "");
      // The fleet's own heartbeat and lease: with a 2 s lease, a replica starved of CPU for 2 s on a
      // busy machine was presumed dead and its runs adopted mid-test (run D), which is not what
      // this test is about (test/replicas.test.ts is).
      const env = {
        RUNYARD_DATABASE_URL: databaseUrl,
        RUNYARD_SECRET_KEY: "parked-test-secret-key-0123456789abcdef",
      };
      const a: TestServer = await startTestServer(tempDir(), env);
      started.push(a.proc);
      const b: TestServer = await startTestServer(tempDir(), env);
      started.push(b.proc);
      const ids = await submitAll(a.url, "parked-fleet", 10);
      await waitForParked(a.url, 10);

      const [canceled, ...rest] = ids as [string, ...string[]];
      await api(b.url, "POST", `/api/runs/${canceled}/cancel`);
      expect((await waitForRun(b.url, canceled, isFinal)).status).toBe("canceled");

      const token = await runnerToken(b.url, "parked-fleet");
      started.push(
        await startRunner(b.url, token, { id: "fleet-runner", group: "parked-fleet", capacity: 4 }),
      );
      for (const runId of rest) {
        expect((await waitForRun(b.url, runId, isFinal)).status).toBe("success");
        expectWholeRun(await readEvents(b.url, runId), runId);
      }
      expectNothingRan(await readEvents(a.url, canceled));
      await waitForParked(a.url, 0);
    },
    120_000,
  );
});
