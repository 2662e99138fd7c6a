import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../src/server/server.js";
import { adminToken, injectJson, startInProcessServer } from "./helpers/in-process.js";

/*
 * Every request body (and the queries that take fields) refuses an unknown field by name, with the
 * API's error body: a misspelt field is an error, never silently dropped. Real server, real SQLite.
 */

let server: RunningServer;
let runId: string;
let sessionToken: string;
let agentRunId: string;

const workflow = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field, as a client would
type Json = any;

async function call(method: string, url: string, token: string | undefined, body?: unknown) {
  return injectJson(server.app, method, url, { token, body });
}

beforeAll(async () => {
  server = await startInProcessServer();
  const user = await call("POST", "/api/users", adminToken, {
    username: "ana",
    role: "member",
    tenant_id: "acme",
    password: "ana-password-123",
  });
  expect(user.status).toBe(201);
  const login = await call("POST", "/api/auth/login", undefined, {
    username: "ana",
    password: "ana-password-123",
  });
  sessionToken = login.body.token;
  const run = await call("POST", "/api/runs", sessionToken, { workflow });
  expect(run.status).toBe(201);
  runId = run.body.run_id;
  // A finished agent run whose agent left a session: what a follow-up message continues.
  const agentRun = await server.store.runs.create({
    kind: "agent",
    name: "task",
    status: "success",
    spec: {
      agents: ["openai"],
      prompt: "task",
      title: "task",
      extra_args: [],
      env: {},
      secrets: [],
      timeout_secs: 300,
      stall_secs: 120,
      labels: [],
    },
  });
  agentRunId = agentRun.id;
  await server.store.jobs.create({
    id: `job_${agentRunId}_openai`,
    run_id: agentRunId,
    type: "agent",
    requirements: { labels: [] },
    payload: {},
  });
  // A finished job with its result (how it ended does not matter to the routes under test).
  await server.store.jobs.cancelQueued(`job_${agentRunId}_openai`, {
    kind: "agent",
    status: "success",
    agent: "openai",
    session_id: "s1",
    usage: { input_tokens: 1, output_tokens: 1 },
    duration_ms: 1,
    memory_peak_bytes: 0,
    cpu_ms: 0,
  });
  await server.store.artifacts.put({
    run_id: runId,
    name: "log.txt",
    content_type: "text/plain",
    content: "hi\n",
  });
});

afterAll(async () => {
  await server.close();
});

interface Case {
  method: "POST" | "PUT" | "PATCH" | "GET" | "DELETE";
  /** The route as /openapi.json names it. */
  route: string;
  /** Called once per case: the same object gets the request with `bogus`, then without. */
  url: () => string | Promise<string>;
  token: () => string | undefined;
  /** A body the route takes; `bogus` is added to it. Undefined: the case is about the query. */
  body?: Record<string, unknown>;
  /** What the request without `bogus` answers, when it is refused for another reason (default: < 300). */
  status?: number;
}

let bots = 0;
/** A stopped bot of the admin token's, as the bot routes store one. */
async function stoppedBot(): Promise<string> {
  const name = `strict-${++bots}`;
  const owner = (await call("GET", "/api/auth/whoami", adminToken)).body.token_id;
  await server.store.bots.create({
    owner,
    name,
    mode: "image",
    spec: {},
    state: "stopped",
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  });
  return name;
}

const cases: Case[] = [
  {
    method: "POST",
    route: "/api/runs",
    url: () => "/api/runs",
    token: () => adminToken,
    // What `runyard run` sends (src/cli/runs.ts), README's and seed clients' fields.
    body: { kind: "workflow", workflow, vars: { WHO: "world" }, file: "hello.yaml" },
  },
  {
    method: "POST",
    route: "/api/workflows/validate",
    url: () => "/api/workflows/validate",
    token: () => sessionToken,
    body: { workflow },
  },
  {
    method: "POST",
    route: "/api/runs/{id}/messages",
    url: () => `/api/runs/${agentRunId}/messages`,
    token: () => adminToken,
    body: { text: "and now the docs" },
  },
  {
    method: "POST",
    route: "/api/chat",
    url: () => "/api/chat",
    token: () => adminToken,
    // No runner here: it answers with the run still queued once timeout_secs has passed.
    body: { message: "hello", model: "claude", timeout_secs: 1 },
  },
  {
    method: "POST",
    route: "/api/runs/{id}/cancel",
    url: () => `/api/runs/${runId}/cancel`,
    token: () => adminToken,
    body: {},
  },
  ...(["approve", "reject"] as const).map(
    (verb): Case => ({
      method: "POST",
      route: `/api/runs/{id}/steps/{step}/${verb}`,
      url: () => `/api/runs/${runId}/steps/hi/${verb}`,
      token: () => adminToken,
      body: { comment: "looks right" },
      // The run's step "hi" runs a command: it takes no answer.
      status: 404,
    }),
  ),
  {
    method: "POST",
    route: "/api/runs/{id}/rerun",
    url: () => `/api/runs/${runId}/rerun`,
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/runs/{id}/retry",
    url: () => `/api/runs/${runId}/retry`,
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/runs/{id}/run-step",
    url: () => `/api/runs/${runId}/run-step`,
    token: () => adminToken,
    body: { step: "hi" },
  },
  {
    method: "POST",
    route: "/api/runs/{id}/stream-token",
    url: () => `/api/runs/${runId}/stream-token`,
    token: () => sessionToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/auth/login",
    url: () => "/api/auth/login",
    token: () => undefined,
    body: { username: "ana", password: "ana-password-123" },
  },
  {
    method: "POST",
    route: "/api/auth/logout",
    url: () => "/api/auth/logout",
    token: () => undefined, // a fresh session, made in the test: logging out ends it
    body: {},
  },
  {
    method: "POST",
    route: "/api/tokens",
    url: () => "/api/tokens",
    token: () => adminToken,
    body: {
      kind: "runner",
      name: "r1",
      group: "linux",
      tenant_id: "acme",
      expires_at: "2099-01-01T00:00:00Z",
    },
  },
  {
    method: "POST",
    route: "/api/users",
    url: () => "/api/users",
    token: () => adminToken,
    body: { username: "bo", role: "member", tenant_id: "acme", password: "bo-password-123" },
  },
  {
    method: "POST",
    route: "/api/users/{username}/password",
    url: () => "/api/users/ana/password",
    token: () => adminToken,
    body: { password: "ana-password-123" },
  },
  {
    method: "PUT",
    route: "/api/secrets/{name}",
    url: () => "/api/secrets/DEPLOY_KEY",
    token: () => adminToken,
    body: { value: "s3cret-value" },
  },
  {
    method: "DELETE",
    route: "/api/tokens/{id}",
    url: async () =>
      `/api/tokens/${(await call("POST", "/api/tokens", adminToken, { kind: "runner" })).body.id}`,
    token: () => adminToken,
    body: {},
  },
  {
    method: "DELETE",
    route: "/api/users/{username}",
    url: async () => {
      await call("POST", "/api/users", adminToken, { username: "gone", role: "member", tenant_id: "acme" });
      return "/api/users/gone";
    },
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/bots",
    url: () => "/api/bots",
    token: () => adminToken,
    // No runner with Docker here: the start is checked whole, then refused with BOT_NO_RUNNER (503).
    body: { name: "strict-bot", image: "ghcr.io/user/bot:v1", env: { BOT_TOKEN: "x" } },
    status: 503,
  },
  {
    method: "POST",
    route: "/api/bots/{name}/stop",
    url: async () => `/api/bots/${await stoppedBot()}/stop`,
    token: () => adminToken,
    body: {},
    status: 409,
  },
  {
    method: "DELETE",
    route: "/api/bots/{name}",
    url: async () => `/api/bots/${await stoppedBot()}`,
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/bots/{name}/update",
    url: async () => `/api/bots/${await stoppedBot()}/update`,
    token: () => adminToken,
    body: {},
    status: 409,
  },
  {
    method: "POST",
    route: "/api/bots/{name}/rollback",
    url: async () => `/api/bots/${await stoppedBot()}/rollback`,
    token: () => adminToken,
    body: {},
    status: 409,
  },
  {
    method: "PATCH",
    route: "/api/bots/{name}/env",
    url: async () => `/api/bots/${await stoppedBot()}/env`,
    token: () => adminToken,
    body: { set: { GREETING: "hi" } },
    status: 409,
  },
  {
    method: "PUT",
    route: "/api/budgets/tenants/{tenant}",
    url: () => "/api/budgets/tenants/acme",
    token: () => adminToken,
    body: { usd_per_day: 20 },
  },
  {
    method: "DELETE",
    route: "/api/budgets/tenants/{tenant}",
    url: () => "/api/budgets/tenants/acme",
    token: () => adminToken,
    body: {},
  },
  {
    method: "PUT",
    route: "/api/budgets/users/{username}",
    url: () => "/api/budgets/users/ana",
    token: () => adminToken,
    body: { usd_per_month: 300 },
  },
  {
    method: "DELETE",
    route: "/api/budgets/users/{username}",
    url: () => "/api/budgets/users/ana",
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/runs/{id}/review-comments",
    url: () => `/api/runs/${agentRunId}/review-comments`,
    token: () => adminToken,
    body: { path: "a.txt", line: 1, text: "use b" },
    status: 400,
  },
  {
    method: "PUT",
    route: "/api/bot-alerts/tenants/{tenant}",
    url: () => "/api/bot-alerts/tenants/acme",
    token: () => adminToken,
    body: { alerts: [] },
  },
  {
    method: "DELETE",
    route: "/api/bot-alerts/tenants/{tenant}",
    url: () => "/api/bot-alerts/tenants/acme",
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/runs/{id}/push",
    url: () => `/api/runs/${runId}/push`,
    token: () => adminToken,
    body: {},
    status: 400,
  },
  {
    method: "POST",
    route: "/api/runs/{id}/pull-request",
    url: () => `/api/runs/${runId}/pull-request`,
    token: () => adminToken,
    body: {},
    status: 400,
  },
  {
    method: "POST",
    route: "/jobs",
    url: () => "/jobs",
    token: () => adminToken,
    body: { blueprint: "bot_runner", data: { action: "list" } },
  },
  {
    method: "DELETE",
    route: "/api/secrets/{name}",
    url: async () => {
      await call("PUT", "/api/secrets/GONE", adminToken, { value: "gone-value" });
      return "/api/secrets/GONE";
    },
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/workflows",
    url: () => "/api/workflows",
    token: () => adminToken,
    body: {
      name: "strict-flow",
      workflow: 'steps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n',
    },
    status: 201,
  },
  {
    method: "POST",
    route: "/api/workflows/{name}/runs",
    url: async () => {
      await call("POST", "/api/workflows", adminToken, {
        name: "strict-run",
        workflow: 'steps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n',
      });
      return "/api/workflows/strict-run/runs";
    },
    token: () => adminToken,
    body: { vars: { A: "1" } },
    status: 201,
  },
  {
    method: "POST",
    route: "/api/workflows/{name}/promote",
    url: async () => {
      const workflow = 'steps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n';
      await call("POST", "/api/workflows", adminToken, { name: "strict-promoted", workflow });
      await call("POST", "/api/hooks", adminToken, {
        name: "strict-promote-hook",
        workflow: "strict-promoted",
      });
      const outsider = await call("POST", "/api/tokens", adminToken, {
        kind: "user",
        name: "strict outsider",
      });
      await call("POST", "/api/workflows", outsider.body.token, { name: "strict-promoted", workflow });
      return "/api/workflows/strict-promoted/promote";
    },
    token: () => adminToken,
    body: { version: 2 },
    status: 200,
  },
  {
    method: "DELETE",
    route: "/api/workflows/{name}",
    url: async () => {
      await call("POST", "/api/workflows", adminToken, {
        name: "strict-gone",
        workflow: 'steps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n',
      });
      return "/api/workflows/strict-gone";
    },
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/hooks",
    url: async () => {
      await call("POST", "/api/workflows", adminToken, {
        name: "strict-hooked",
        workflow:
          'inputs: {HOOK_BRANCH: }\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n',
      });
      return "/api/hooks";
    },
    token: () => adminToken,
    body: { name: "strict-hook", workflow: "strict-hooked", vars: { HOOK_BRANCH: "$.ref" } },
    status: 201,
  },
  {
    method: "DELETE",
    route: "/api/hooks/{name}",
    url: async () => {
      await call("POST", "/api/workflows", adminToken, {
        name: "strict-unhooked",
        workflow: 'steps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n',
      });
      await call("POST", "/api/hooks", adminToken, { name: "strict-gone-hook", workflow: "strict-unhooked" });
      return "/api/hooks/strict-gone-hook";
    },
    token: () => adminToken,
    body: {},
  },
  {
    method: "POST",
    route: "/api/forges",
    url: () => "/api/forges",
    token: () => adminToken,
    body: { kind: "github", repo: "acme/app", token: "ghp_strict" },
    status: 201,
  },
  {
    method: "DELETE",
    route: "/api/forges/{id}",
    url: async () => {
      const added = await call("POST", "/api/forges", adminToken, {
        kind: "github",
        repo: "acme/app",
        token: "ghp_strict",
      });
      return `/api/forges/${added.body.id}`;
    },
    token: () => adminToken,
    body: {},
  },
  { method: "GET", route: "/api/runs", url: () => "/api/runs?limit=5", token: () => adminToken },
  { method: "GET", route: "/api/runners", url: () => "/api/runners", token: () => adminToken },
  { method: "GET", route: "/api/workflows", url: () => "/api/workflows", token: () => adminToken },
  { method: "GET", route: "/api/schedules", url: () => "/api/schedules", token: () => adminToken },
  { method: "GET", route: "/api/tokens", url: () => "/api/tokens", token: () => adminToken },
  { method: "GET", route: "/api/users", url: () => "/api/users", token: () => adminToken },
  { method: "GET", route: "/api/secrets", url: () => "/api/secrets?tenant=acme", token: () => adminToken },
  {
    method: "GET",
    route: "/api/runs/{id}/artifacts",
    url: () => `/api/runs/${runId}/artifacts`,
    token: () => adminToken,
  },
  {
    method: "GET",
    route: "/api/runs/{id}/artifacts/{name}",
    url: () => `/api/runs/${runId}/artifacts/log.txt`,
    token: () => adminToken,
  },
];

describe("strict request bodies", () => {
  it.each(cases)("$method $route refuses an unknown field by name", async (entry) => {
    const token =
      entry.route === "/api/auth/logout"
        ? (
            await call("POST", "/api/auth/login", undefined, {
              username: "ana",
              password: "ana-password-123",
            })
          ).body.token
        : entry.token();
    const url = await entry.url();
    const withBogus =
      entry.body === undefined
        ? await call(entry.method, `${url}${url.includes("?") ? "&" : "?"}bogus=1`, token)
        : await call(entry.method, url, token, { ...entry.body, bogus: 1 });
    expect(withBogus.status, JSON.stringify(withBogus.body)).toBe(400);
    expect(withBogus.body.error.code).toBe("INVALID_INPUT");
    expect(withBogus.body.error.message).toContain("bogus");
    expect(withBogus.body.error.hint).toContain('"bogus"');
    // The same request without the unknown field is taken: only `bogus` was wrong.
    const without = await call(entry.method, url, token, entry.body);
    if (entry.status !== undefined) expect(without.status, JSON.stringify(without.body)).toBe(entry.status);
    else expect(without.status, JSON.stringify(without.body)).toBeLessThan(300);
  });

  it("covers every POST, PUT, PATCH and DELETE route of /openapi.json that takes JSON", async () => {
    const spec = (await call("GET", "/openapi.json", undefined)).body;
    const withBody: string[] = [];
    for (const [path, operations] of Object.entries<Json>(spec.paths)) {
      for (const [method, operation] of Object.entries<Json>(operations)) {
        // A raw body (an artifact upload) is content, not fields: nothing in it can be misspelt.
        const content = operation.requestBody?.content;
        if (content && !("application/json" in content)) continue;
        // A webhook delivery's body is the sender's, taken as signed: runyard names none of its fields.
        if (
          method === "post" &&
          ["/api/hooks/{name}", "/api/forges/{id}/webhook", "/api/bots/{name}/hook/{path}"].includes(path)
        )
          continue;
        if (["post", "put", "patch", "delete"].includes(method))
          withBody.push(`${method.toUpperCase()} ${path}`);
      }
    }
    const covered = cases.filter((entry) => entry.body !== undefined).map((e) => `${e.method} ${e.route}`);
    expect(withBody.sort()).toEqual(covered.sort());
  });

  it("refuses an unknown field of the OpenRunner-style agent body by name, at every level", async () => {
    for (const [body, named] of [
      [
        { input: { text: "hi" }, metadata: { agent_type: "openai", stall_secs: 5 } },
        'metadata: unknown field "stall_secs"',
      ],
      [{ input: { text: "hi", lang: "en" } }, 'input: unknown field "lang"'],
      [{ input: { text: "hi" }, priority: 1 }, 'body: unknown field "priority"'],
    ] as const) {
      const answer = await call("POST", "/api/runs", adminToken, body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error.code).toBe("INVALID_INPUT");
      expect(answer.body.error.message).toBe(named);
      expect(answer.body.error.hint).toContain("native agent body");
    }
  });

  it("keeps the agent-server API's /run-status and a body-less cancel working", async () => {
    const status = await call("GET", `/run-status?run_id=${runId}`, adminToken);
    expect(status.status).toBe(200);
    const run = await call("POST", "/api/runs", adminToken, { workflow });
    const cancel = await call("POST", `/api/runs/${run.body.run_id}/cancel`, adminToken);
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
  });
});
