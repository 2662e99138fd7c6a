import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processesWith } from "./helpers/cli.js";
import { dockerAvailable } from "./helpers/docker.js";
import {
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

const flow = (steps: string, hosts = "    local: {}\n"): string =>
  `version: v0.1\nname: api-test\ninventory:\n  hosts:\n${hosts}steps:\n${steps}`;

describe("server and runners", () => {
  let server: TestServer;
  const runners: Proc[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    const alpha = await runnerToken(server.url, "alpha");
    const beta = await runnerToken(server.url, "beta");
    runners.push(
      await startRunner(server.url, alpha, {
        id: "runner-a",
        group: "alpha",
        env: { WHERE: "on-a", RUNYARD_STEP_PASS_ENV: "WHERE" },
      }),
    );
    runners.push(
      await startRunner(server.url, beta, {
        id: "runner-b",
        group: "beta",
        labels: "gpu",
        // A variable of the runner's env reaches a platform run's steps only as the operator passes it.
        env: { WHERE: "on-b", RUNYARD_STEP_PASS_ENV: "WHERE" },
      }),
    );
  });

  afterAll(async () => {
    await Promise.all(runners.map((r) => r.kill()));
    await server.proc.kill();
  });

  it("answers /health without a token and refuses the API without one", async () => {
    expect((await api(server.url, "GET", "/health", undefined, "")).status).toBe(200);
    const missing = await api<{ error: { code: string; hint: string } }>(
      server.url,
      "GET",
      "/api/runs",
      undefined,
      "",
    );
    expect(missing.status).toBe(401);
    expect(missing.body.error.code).toBe("UNAUTHORIZED");
    expect(missing.body.error.hint).toContain("Bearer");
    expect((await api(server.url, "GET", "/api/runs", undefined, "wrong-token")).status).toBe(401);
  });

  it("does not let a runner token call user routes", async () => {
    const token = await runnerToken(server.url);
    const response = await api<{ error: { code: string } }>(server.url, "GET", "/api/runs", undefined, token);
    expect(response.status).toBe(403);
    expect(response.body.error.code).toBe("FORBIDDEN");
  });

  it("lists runners with the ADOS runners list's fields", async () => {
    const { body } = await api<Array<Record<string, unknown>>>(server.url, "GET", "/api/runners");
    const a = body.find((r) => r.id === "runner-a");
    expect(a).toMatchObject({ id: "runner-a", group: "alpha", status: "connected", capacity: 2 });
    for (const key of [
      "hostname",
      "cpus",
      "memory",
      "connected_at",
      "labels",
      "mode",
      "last_heartbeat_at",
      "running_jobs",
    ]) {
      expect(a).toHaveProperty(key);
    }
    // Its own labels, then what routes agent work to it: its mode's and its agents' (docs/agents.md),
    // then `docker` where it reaches a Docker engine (docs/runners.md).
    expect(body.find((r) => r.id === "runner-b")?.labels).toEqual([
      "gpu",
      "mode:chat",
      "mode:issue",
      "agent:openai",
      ...((await dockerAvailable()) ? ["docker"] : []),
    ]);
  });

  it("rejects an invalid workflow with the same positioned messages as validate", async () => {
    const response = await api<{ error: { code: string; message: string } }>(
      server.url,
      "POST",
      "/api/runs",
      {
        kind: "workflow",
        workflow: flow("  - name: a\n    targts: [local]\n    action: cmd.run\n    args:\n      cmd: echo\n"),
        file: "bad.yaml",
      },
    );
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("WORKFLOW_INVALID");
    expect(response.body.error.message).toContain('bad.yaml:8:5: unknown key "targts"');
  });

  it("routes hosts to runners by group and labels, and streams their output", async () => {
    const runId = await submit(
      server.url,
      flow(
        '  - name: where\n    targets: [a, b]\n    action: shell.run\n    args:\n      script: echo "$RUNYARD_HOST $WHERE"\n',
        "    a: {group: alpha}\n    b: {group: beta, labels: [gpu]}\n",
      ),
    );
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("success");
    const events = await readEvents(server.url, runId);
    const output = events.flatMap((e) => (e.type === "step.output" ? [e.data.trim()] : [])).sort();
    expect(output).toEqual(["a on-a", "b on-b"]);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)?.type).toBe("run.finished");
  });

  it("keeps a run queued while no runner matches, and runs it when one joins", async () => {
    const runId = await submit(
      server.url,
      flow("  - name: s\n    action: cmd.run\n    args:\n      cmd: echo late\n", "    x: {group: gamma}\n"),
    );
    const queued = await api<{ status: string }>(server.url, "GET", `/api/runs/${runId}`);
    expect(queued.body.status).toBe("queued");
    const late = await startRunner(server.url, await runnerToken(server.url, "gamma"), {
      id: "runner-c",
      group: "gamma",
    });
    try {
      const run = await waitForRun(server.url, runId, isFinal);
      expect(run.status).toBe("success");
    } finally {
      await late.kill();
    }
  });

  it("cancels a running run: SIGTERM then SIGKILL, status canceled, no process left", async () => {
    const marker = `96${Math.floor(Math.random() * 1e6)}.5`;
    const runId = await submit(
      server.url,
      flow(
        `  - name: long\n    action: shell.run\n    args:\n      script: |\n        trap '' TERM\n        sleep ${marker} &\n        echo started\n        wait\n`,
        "    a: {group: alpha}\n",
      ),
    );
    await waitForRun(server.url, runId, (run) => run.steps.some((s) => s.status === "running"));
    const events = await readEventsUntil(server.url, runId, "started");
    expect(events).toContain("started");
    const cancel = await api<{ status: string }>(server.url, "POST", `/api/runs/${runId}/cancel`);
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe("canceled");
    expect(processesWith(marker)).toEqual([]);
  });

  it("cancels a run still queued for a runner that never comes", async () => {
    const runId = await submit(
      server.url,
      flow(
        "  - name: s\n    action: cmd.run\n    args:\n      cmd: echo never\n",
        "    x: {group: nobody}\n",
      ),
    );
    const cancel = await api<{ status: string }>(server.url, "POST", `/api/runs/${runId}/cancel`);
    expect(cancel.body.status).toBe("canceled");
    const again = await api<{ error: { code: string } }>(server.url, "POST", `/api/runs/${runId}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("CONFLICT");
  });

  it("serves the agent-server API's /run-status snapshot and 404 for an unknown run", async () => {
    const runId = await submit(
      server.url,
      flow("  - name: s\n    action: cmd.run\n    args:\n      cmd: echo hi\n", "    a: {}\n"),
    );
    await waitForRun(server.url, runId, isFinal);
    const snapshot = await api<Record<string, unknown>>(server.url, "GET", `/run-status?run_id=${runId}`);
    expect(snapshot.body).toMatchObject({ run_id: runId, workflow_name: "api-test", status: "success" });
    expect((await api(server.url, "GET", "/run-status?run_id=run_nope")).status).toBe(404);
  });

  it("lists runs newest first, filtered by status", async () => {
    const { body } = await api<{ runs: Array<{ run_id: string; status: string }> }>(
      server.url,
      "GET",
      "/api/runs?status=success&limit=2",
    );
    expect(body.runs.length).toBeLessThanOrEqual(2);
    expect(body.runs.every((r) => r.status === "success")).toBe(true);
    const ids = body.runs.map((r) => r.run_id);
    expect([...ids].sort().reverse()).toEqual(ids);
  });

  it("publishes an OpenAPI document built from the schemas", async () => {
    const { body } = await api<{ openapi: string; paths: Record<string, unknown> }>(
      server.url,
      "GET",
      "/openapi.json",
    );
    expect(body.openapi).toBe("3.1.0");
    expect(Object.keys(body.paths)).toEqual(
      expect.arrayContaining(["/api/runs", "/api/runs/{id}/events", "/api/runners"]),
    );
  });
});

/** Follows the SSE stream until an output chunk contains `text`; returns the output seen. */
async function readEventsUntil(url: string, runId: string, text: string): Promise<string> {
  const controller = new AbortController();
  const response = await fetch(new URL(`/api/runs/${runId}/events`, url), {
    headers: { authorization: "Bearer ryt_test_admin_token_0123456789" },
    signal: controller.signal,
  });
  let seen = "";
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    seen += decoder.decode(chunk, { stream: true });
    if (seen.includes(text)) break;
  }
  controller.abort();
  return seen;
}
