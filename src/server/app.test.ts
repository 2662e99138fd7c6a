import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, makeToken, startInProcessServer } from "../../test/helpers/in-process.js";
import type { RunningServer } from "./server.js";

interface ErrorReply {
  error: { code: string; message: string; hint: string; details?: { path: string; message: string }[] };
}

const flow = (group: string, extra = ""): string =>
  `version: v0.1\nname: routes\ninventory:\n  hosts:\n    x: {group: ${group}}\n${extra}steps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: echo hi\n`;

let server: RunningServer;
let userToken: string;
let tenantToken: string;
let runnerToken: string;

beforeAll(async () => {
  server = await startInProcessServer();
  userToken = await makeToken(server, "user");
  tenantToken = await makeToken(server, "user", { tenant_id: "acme" });
  runnerToken = await makeToken(server, "runner", { group: "linux" });
});

afterAll(async () => {
  await server.close();
});

function call(options: InjectOptions & { token?: string | null }): Promise<LightMyRequestResponse> {
  const { token = adminToken, ...rest } = options;
  return server.app.inject({
    ...rest,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...rest.headers },
  });
}

async function submit(workflow: string, token: string = adminToken): Promise<string> {
  const response = await call({ method: "POST", url: "/api/runs", payload: { workflow }, token });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ run_id: string }>().run_id;
}

describe("auth", () => {
  it("answers 401 with a hint to a route called without a token", async () => {
    const response = await call({ method: "GET", url: "/api/runs", token: null });
    expect(response.statusCode).toBe(401);
    const { error } = response.json<ErrorReply>();
    expect(error.code).toBe("UNAUTHORIZED");
    expect(error.hint).toContain("Authorization: Bearer <token>");
  });

  it("answers 401 to a token that is not valid", async () => {
    const response = await call({ method: "GET", url: "/api/runners", token: "ryt_not_a_token" });
    expect(response.statusCode).toBe(401);
    expect(response.json<ErrorReply>().error.message).toContain("not valid");
  });

  it("answers 403 with a hint to a runner token on a user route", async () => {
    const response = await call({ method: "GET", url: "/api/runs", token: runnerToken });
    expect(response.statusCode).toBe(403);
    const { error } = response.json<ErrorReply>();
    expect(error.code).toBe("FORBIDDEN");
    expect(error.hint).toContain("user or admin token");
  });

  it("lets only admins make tokens, and says so before looking at the body", async () => {
    const refused = await call({
      method: "POST",
      url: "/api/tokens",
      payload: { kind: "nope" },
      token: userToken,
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json<ErrorReply>().error.message).toContain("admin");
    const made = await call({
      method: "POST",
      url: "/api/tokens",
      payload: { kind: "runner", group: "gpu" },
    });
    expect(made.statusCode).toBe(201);
    expect(made.json()).toMatchObject({ kind: "runner", group: "gpu", token: expect.any(String) });
  });

  it("takes ?access_token= on the event stream and the raw log only", async () => {
    const runId = await submit(flow("nobody"));
    await call({ method: "POST", url: `/api/runs/${runId}/cancel` });
    const stream = await call({
      method: "GET",
      url: `/api/runs/${runId}/events?access_token=${adminToken}`,
      token: null,
    });
    expect(stream.statusCode).toBe(200);
    expect(stream.headers["content-type"]).toContain("text/event-stream");
    const elsewhere = await call({
      method: "GET",
      url: `/api/runs/${runId}?access_token=${adminToken}`,
      token: null,
    });
    expect(elsewhere.statusCode).toBe(401);
    expect(elsewhere.json<ErrorReply>().error.hint).toContain(
      "only GET /api/runs/:id/events and /log take ?access_token=",
    );
  });

  it("answers /health and /openapi.json without a token", async () => {
    const health = await call({ method: "GET", url: "/health", token: null });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({
      ok: true,
      version: "0.0.0-test",
      replica: expect.any(String),
      leader: true,
      database: "ok",
    });
    expect((await call({ method: "GET", url: "/openapi.json", token: null })).statusCode).toBe(200);
  });

  it("answers /health/ready 200 without a token while it reaches its database", async () => {
    const ready = await call({ method: "GET", url: "/health/ready", token: null });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ ok: true, database: "ok" });
  });
});

describe("validation", () => {
  it("answers 400 naming the field of a body that does not match the schema", async () => {
    const response = await call({ method: "POST", url: "/api/runs", payload: { workflow: 42 } });
    expect(response.statusCode).toBe(400);
    const { error } = response.json<ErrorReply>();
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.message).toMatch(/^invalid body: workflow: /);
    expect(error.details).toEqual([{ path: "workflow", message: expect.any(String) }]);
  });

  it("answers 400 for an empty workflow with the schema's own words", async () => {
    const response = await call({ method: "POST", url: "/api/runs", payload: { workflow: "" } });
    expect(response.statusCode).toBe(400);
    expect(response.json<ErrorReply>().error.message).toContain("workflow is empty");
  });

  it("answers 400 naming the query parameter that is out of range", async () => {
    const response = await call({ method: "GET", url: "/api/runs?limit=100000" });
    expect(response.statusCode).toBe(400);
    expect(response.json<ErrorReply>().error.message).toMatch(/^invalid query: limit: /);
    const status = await call({ method: "GET", url: "/api/runs?status=sleeping" });
    expect(status.json<ErrorReply>().error.details?.[0]?.path).toBe("status");
  });

  it("answers 400 when the agent-server API's /run-status is asked without run_id", async () => {
    const response = await call({ method: "GET", url: "/run-status" });
    expect(response.statusCode).toBe(400);
    expect(response.json<ErrorReply>().error.message).toContain("run_id is required");
  });

  it("answers 400 with a hint to a vars name that is not a variable name", async () => {
    const response = await call({
      method: "POST",
      url: "/api/runs",
      payload: { workflow: flow("nobody"), vars: { "A=B": "v" } },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json<ErrorReply>().error.hint).toContain("letters, digits and _");
  });

  it("queues the OpenRunner-style API's body as an agent run with that API's defaults", async () => {
    const response = await call({
      method: "POST",
      url: "/api/runs",
      payload: { input: { text: "create hello.py" }, metadata: { agent_type: "codex", cwd: "/tmp/test" } },
    });
    expect(response.statusCode).toBe(201);
    const run = await call({ method: "GET", url: `/api/runs/${response.json<{ run_id: string }>().run_id}` });
    // No runner here has the agent: the run is refused at once rather than left waiting.
    expect(run.json()).toMatchObject({ kind: "agent", name: "create hello.py" });
  });

  it("names the field of a bad OpenRunner-style body and shows that API's form", async () => {
    const response = await call({ method: "POST", url: "/api/runs", payload: { input: { text: "" } } });
    expect(response.statusCode).toBe(400);
    const { error } = response.json<ErrorReply>();
    expect(error.message).toContain("input.text");
    expect(error.hint).toContain("agent_type");
  });

  it("refuses an agent nobody knows, suggesting the nearest", async () => {
    const response = await call({
      method: "POST",
      url: "/api/runs",
      payload: { kind: "agent", agent: "claude", prompt: "hi" },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json<ErrorReply>().error.hint).toContain("claude_code");
  });

  it("answers 400 WORKFLOW_INVALID with positioned diagnostics", async () => {
    const response = await call({
      method: "POST",
      url: "/api/runs",
      payload: { workflow: `${flow("nobody")}    targts: [x]\n`, file: "bad.yaml" },
    });
    expect(response.statusCode).toBe(400);
    const { error } = response.json<ErrorReply>();
    expect(error.code).toBe("WORKFLOW_INVALID");
    expect(error.message).toMatch(/bad\.yaml:\d+:\d+: unknown key "targts"/);
  });
});

describe("not found and too large", () => {
  it("answers 404 with the error body for an unknown run", async () => {
    for (const url of ["/api/runs/run_nope", "/api/runs/run_nope/events", "/run-status?run_id=run_nope"]) {
      const response = await call({ method: "GET", url });
      expect(response.statusCode, url).toBe(404);
      expect(response.json<ErrorReply>().error.code, url).toBe("NOT_FOUND");
    }
    const cancel = await call({ method: "POST", url: "/api/runs/run_nope/cancel" });
    expect(cancel.statusCode).toBe(404);
  });

  it("answers 404 naming an unknown route and where the routes are", async () => {
    const response = await call({ method: "GET", url: "/api/nothing" });
    expect(response.statusCode).toBe(404);
    expect(response.json<ErrorReply>().error).toMatchObject({
      message: "no route GET /api/nothing",
      hint: expect.stringContaining("/openapi.json"),
    });
  });

  it("answers a tenant 404 for another tenant's run", async () => {
    const runId = await submit(flow("nobody"));
    const response = await call({ method: "GET", url: `/api/runs/${runId}`, token: tenantToken });
    expect(response.statusCode).toBe(404);
  });

  it("answers 413 BODY_TOO_LARGE naming the route's cap", async () => {
    const workflow = "x".repeat(9 * 1024 * 1024);
    const response = await call({ method: "POST", url: "/api/runs", payload: { workflow } });
    expect(response.statusCode).toBe(413);
    const { error } = response.json<ErrorReply>();
    expect(error.code).toBe("BODY_TOO_LARGE");
    expect(error.message).toContain("8 MiB that POST /api/runs takes");
    const token = await call({
      method: "POST",
      url: "/api/tokens",
      payload: { kind: "user", name: "x".repeat(2e6) },
    });
    expect(token.statusCode).toBe(413);
    expect(token.json<ErrorReply>().error.message).toContain("1 MiB");
  });
});

describe("runs", () => {
  it("shows a queued run with waiting_for and without the submitted text", async () => {
    const runId = await submit(flow("gamma"));
    const response = await call({ method: "GET", url: `/api/runs/${runId}` });
    expect(response.statusCode).toBe(200);
    const run = response.json<Record<string, unknown>>();
    expect(run).toMatchObject({
      run_id: runId,
      id: runId,
      status: "queued",
      kind: "workflow",
      name: "routes",
    });
    expect(run.waiting_for).toEqual([
      {
        host: "x",
        group: "gamma",
        labels: [],
        tenant_id: null,
        reason:
          "waiting for a runner outside any tenant in group gamma: no runners online (start one with a runner token made without --tenant)",
      },
    ]);
    expect(run).not.toHaveProperty("spec");
    const list = await call({ method: "GET", url: "/api/runs?limit=1" });
    expect(list.json()).toMatchObject({ runs: [{ run_id: expect.any(String) }], next: expect.any(String) });
    expect(list.json<{ runs: object[] }>().runs[0]).not.toHaveProperty("spec");
  });

  it("cancels a queued run, then answers 409 to a second cancel", async () => {
    const runId = await submit(flow("nobody"));
    const first = await call({ method: "POST", url: `/api/runs/${runId}/cancel` });
    expect(first.json()).toEqual({ run_id: runId, status: "canceled" });
    const again = await call({ method: "POST", url: `/api/runs/${runId}/cancel` });
    expect(again.statusCode).toBe(409);
    expect(again.json<ErrorReply>().error.code).toBe("CONFLICT");
  });

  it("streams a finished run's events with retry: and event names, then 204 past the end", async () => {
    const runId = await submit(flow("nobody"));
    await call({ method: "POST", url: `/api/runs/${runId}/cancel` });
    const stream = await call({ method: "GET", url: `/api/runs/${runId}/events` });
    expect(stream.body).toContain("retry: 2000\n");
    expect(stream.body).toContain("event: run.queued\n");
    const last = [...stream.body.matchAll(/^id: (\d+)$/gm)].at(-1)?.[1];
    expect(stream.body).toContain("event: run.finished\n");
    const past = await call({
      method: "GET",
      url: `/api/runs/${runId}/events`,
      headers: { "last-event-id": last },
    });
    expect(past.statusCode).toBe(204);
    expect(past.body).toBe("");
  });

  it("answers the agent-server API's run snapshot", async () => {
    const runId = await submit(flow("nobody"));
    const response = await call({ method: "GET", url: `/run-status?run_id=${runId}` });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ run_id: runId, workflow_name: "routes", status: "queued" });
  });

  it("lists runners as the ADOS runners list names them", async () => {
    const response = await call({ method: "GET", url: "/api/runners" });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual([]);
  });
});
