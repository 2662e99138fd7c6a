import { decodeJwt, SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { runnerSocketPath } from "../src/core/protocol.js";
import type { RunningServer } from "../src/server/server.js";
import {
  adminToken,
  injectJson,
  makeToken,
  startInProcessServer,
  tenantRunnerKnown,
} from "./helpers/in-process.js";

/*
 * docs/security.md's "Who may do what", as one table: every route of /openapi.json has a row (a
 * route added later fails here until it has one), and each row says what each kind of caller gets.
 * Then every non-public route is attacked with no token and with expired, revoked and tampered
 * credentials. A whole server in this process, real SQLite in memory, no mocks.
 */

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field, as a client would
type Json = any;

/** The callers of the table's columns. */
const callers = [
  "none",
  "runner",
  "streamOther",
  "memberA",
  "memberB",
  "tokenB",
  "adminA",
  "platform",
  "outside",
] as const;
type Caller = (typeof callers)[number];

let server: RunningServer;
const credentials = {} as Record<Caller, string | undefined>;
const password = "matrix-password-123";
const workflow = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";
/** Items of tenant A and of tenant B, by list. */
const items = { runs: { A: "", B: "" }, tokens: { A: "", B: "" }, bots: { A: "", B: "" } };
let counter = 0;
const fresh = (prefix: string) => `${prefix}${++counter}`;

async function call(
  method: string,
  url: string,
  token: string | undefined,
  body?: unknown,
  raw?: { contentType: string; payload: string },
) {
  return injectJson(server.app, method, url, { token, body, ...(raw ? { raw } : {}) });
}

async function ok(method: string, url: string, token: string | undefined, body?: unknown): Promise<Json> {
  const answer = await call(method, url, token, body);
  expect(answer.status, `${method} ${url}: ${JSON.stringify(answer.body)}`).toBeLessThan(300);
  return answer.body;
}

async function addUser(role: "admin" | "member", tenant: string | null, name = fresh("user")) {
  await ok("POST", "/api/users", adminToken, {
    username: name,
    role,
    password,
    ...(tenant ? { tenant_id: tenant } : {}),
  });
  return name;
}

async function login(username: string): Promise<string> {
  return (await ok("POST", "/api/auth/login", undefined, { username, password })).token;
}

async function runOf(caller: Caller): Promise<string> {
  return (await ok("POST", "/api/runs", credentials[caller], { workflow })).run_id;
}

beforeAll(async () => {
  server = await startInProcessServer();
  credentials.none = undefined;
  credentials.runner = await makeToken(server, "runner", { tenant_id: "A", group: "linux" });
  credentials.memberA = await login(await addUser("member", "A", "ana"));
  credentials.memberB = await login(await addUser("member", "B", "bob"));
  credentials.tokenB = await makeToken(server, "user", { tenant_id: "B" });
  credentials.adminA = await login(await addUser("admin", "A", "alice"));
  credentials.platform = adminToken;
  credentials.outside = await makeToken(server, "user");
  const other = await runOf("platform");
  credentials.streamOther = (await ok("POST", `/api/runs/${other}/stream-token`, adminToken)).token;

  await ok("POST", "/api/workflows", credentials.memberA, { name: "flow-a", workflow });
  await ok("POST", "/api/workflows", credentials.memberB, { name: "flow-b", workflow });
  items.runs.A = await runOf("memberA");
  items.runs.B = await runOf("memberB");
  items.tokens.A = (await ok("POST", "/api/tokens", credentials.memberA, { kind: "user" })).id;
  items.tokens.B = (await ok("POST", "/api/tokens", credentials.memberB, { kind: "user" })).id;
  await ok("PUT", "/api/secrets/SECRET_A", credentials.memberA, { value: "value-of-a" });
  await ok("PUT", "/api/secrets/SECRET_B", credentials.memberB, { value: "value-of-b" });
  await server.store.artifacts.put({
    run_id: items.runs.A,
    name: "diff.patch",
    content_type: "text/x-diff",
    content: "+a change of A\n",
  });
  for (const [tenant, caller] of [
    ["A", "memberA"],
    ["B", "memberB"],
  ] as const) {
    items.bots[tenant] = await botOf(caller, tenant, `bot-${tenant.toLowerCase()}`);
  }
  // A saved workflow of each tenant (and outside any), and a hook of A and of B running it.
  for (const [caller, workflowName] of [
    ["memberA", "wf-a"],
    ["memberB", "wf-b"],
    ["platform", "wf-none"],
  ] as const) {
    await ok("POST", "/api/workflows", credentials[caller], { name: workflowName, workflow });
  }
  await ok("POST", "/api/hooks", credentials.memberA, { name: "hook-a", workflow: "wf-a" });
  await ok("POST", "/api/hooks", credentials.memberB, { name: "hook-b", workflow: "wf-b" });
  for (const tenant of ["A", "B"]) await tenantRunnerKnown(server, tenant);
});

afterAll(async () => {
  await server.close();
});

/** A run of tenant A waiting at its first step, an approval any member of A may answer. */
async function waitingApprovalOfA(): Promise<string> {
  const gate =
    "name: gated\nsteps:\n  - name: gate\n    action: approval\n    args: {message: ok?, approvers: [role:member]}\n";
  const runId = (await ok("POST", "/api/runs", credentials.memberA, { workflow: gate })).run_id;
  const deadline = Date.now() + 10_000;
  while (!(await server.store.approvals.get(runId, "gate"))) {
    if (Date.now() > deadline) throw new Error(`run ${runId} never started waiting`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return runId;
}

/** A stopped bot of the caller's (bots are their owner's), stored as the bot routes store one. */
async function botOf(caller: Caller, tenant: string, name: string): Promise<string> {
  const owner = (await ok("GET", "/api/auth/whoami", credentials[caller])).user_id;
  await server.store.bots.create({
    tenant_id: tenant,
    owner,
    name,
    mode: "image",
    spec: {},
    state: "stopped",
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  });
  return name;
}

/**
 * A job of tenant A leased to the runner of the `runner` caller's token, as the store leases one:
 * its run is carried by this server, so no replica adopts it.
 */
async function jobLeasedToRunner(): Promise<string> {
  const token = await server.store.tokens.find(credentials.runner ?? "");
  await server.store.runners.upsert({
    id: "artifact-runner",
    group: "linux",
    labels: [],
    mode: "all",
    capacity: 1,
    hostname: "host-A",
    tenant_id: "A",
    ...(token ? { token_id: token.id } : {}),
  });
  const run = await server.store.runs.create({
    kind: "workflow",
    name: "leased",
    tenant_id: "A",
    replica_id: server.replica.id,
  });
  const job = await server.store.jobs.create({
    run_id: run.id,
    requirements: { group: "nowhere", labels: [], tenant_id: "A" },
    payload: {},
    // The oldest job this runner may take, so the claim below takes it.
    created_at: "2000-01-01T00:00:00.000Z",
  });
  const claimer = { group: "nowhere", labels: [], tenant_id: "A", shared: false, isolation: "none" } as const;
  await server.store.jobs.claim({ id: "artifact-runner", ...claimer }, 3_600_000);
  await server.store.jobs.accept(job.id, "artifact-runner");
  return job.id;
}

type Expect = Record<Caller, number>;
/** Refused before the route: no token 401, runner token 403, a stream token of another run 401. */
const refused = { none: 401, runner: 403, streamOther: 401 } as const;
const everyone = (status: number): Expect => ({
  none: status,
  runner: status,
  streamOther: status,
  memberA: status,
  memberB: status,
  tokenB: status,
  adminA: status,
  platform: status,
  outside: status,
});
/** A user token of tenant B (no user behind it) gets what B's member gets unless told otherwise. */
const byCaller = (rest: Omit<Expect, keyof typeof refused | "tokenB"> & { tokenB?: number }): Expect => ({
  ...refused,
  ...rest,
  tokenB: rest.tokenB ?? rest.memberB,
});
/** Tenant A's object: A's member and admin and the platform admin see it; others get 404. */
const ofTenantA = (status: number): Expect =>
  byCaller({ memberA: status, memberB: 404, adminA: status, platform: status, outside: 404 });
/** Every caller with a user or admin credential. */
const anyUser = (status: number): Expect =>
  byCaller({ memberA: status, memberB: status, adminA: status, platform: status, outside: status });
/** Admins only: members and user tokens 403. */
const adminOnly = (status: number, adminA = status): Expect =>
  byCaller({ memberA: 403, memberB: 403, adminA, platform: status, outside: 403 });

interface Row {
  /** The route as /openapi.json names it, and what this row checks. */
  route: string;
  what?: string;
  /** The request; called again for each caller, so each gets a fresh object to act on. */
  request: (
    caller: Caller,
  ) => Promise<{ url: string; body?: unknown; raw?: { contentType: string; payload: string } }>;
  expect: Expect;
  /** For lists: which of tenant A's and B's items each caller that may list sees. */
  sees?: { find: (body: Json, tenant: "A" | "B") => boolean; who: Partial<Record<Caller, string>> };
  /** Logout ends the session shown: each caller shows a fresh one. */
  freshSession?: boolean;
  /** More about a successful answer. */
  check?: (caller: Caller, body: Json) => void;
}

const rows: Row[] = [
  { route: "GET /health", request: async () => ({ url: "/health" }), expect: everyone(200) },
  {
    route: "GET /health/ready",
    what: "public, like /health: a readiness probe sends no token",
    request: async () => ({ url: "/health/ready" }),
    expect: everyone(200),
  },
  {
    route: "GET /health/agents",
    what: "public, as the OpenRunner-style API's; it never shows a credential",
    request: async () => ({ url: "/health/agents" }),
    expect: everyone(200),
  },
  {
    route: "POST /api/runs/{id}/messages",
    what: "tenant A's (workflow) run: seen by A's callers (400, not an agent run), absent for others",
    request: async () => ({ url: `/api/runs/${items.runs.A}/messages`, body: { text: "and now the tests" } }),
    expect: ofTenantA(400),
  },
  {
    route: "POST /api/chat",
    what: "any user (an empty message is refused after the credential is checked)",
    request: async () => ({ url: "/api/chat", body: { message: "" } }),
    expect: anyUser(400),
  },
  {
    route: "POST /api/bots",
    what: "any user (a start without a source is refused after the credential is checked)",
    request: async () => ({ url: "/api/bots", body: { name: "nothing" } }),
    expect: anyUser(400),
  },
  {
    route: "GET /api/bots",
    what: "a caller's own bots only",
    request: async () => ({ url: "/api/bots" }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.bots.some((bot: Json) => bot.name === `bot-${tenant.toLowerCase()}`),
      who: { memberA: "A", memberB: "B", tokenB: "", adminA: "", platform: "", outside: "" },
    },
  },
  {
    route: "GET /api/bots/{name}",
    what: "ana's bot: hers alone; anyone else has no bot of that name (404)",
    request: async () => ({ url: `/api/bots/${items.bots.A}` }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/bots/{name}/logs",
    request: async () => ({ url: `/api/bots/${items.bots.A}/logs` }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "POST /api/bots/{name}/stop",
    what: "ana's stopped bot: 409 for her (not running), 404 for others",
    request: async () => ({ url: `/api/bots/${items.bots.A}/stop` }),
    expect: byCaller({ memberA: 409, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "DELETE /api/bots/{name}",
    what: "a fresh bot of ana's each time: removed by her only",
    request: async () => ({ url: `/api/bots/${await botOf("memberA", "A", fresh("gone-"))}` }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "POST /api/bots/{name}/update",
    what: "ana's stopped bot: only a running bot is updated (409 for her), others have no such bot",
    request: async () => ({ url: `/api/bots/${items.bots.A}/update`, body: {} }),
    expect: byCaller({ memberA: 409, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "POST /api/bots/{name}/rollback",
    what: "ana's bot with one version: nothing to return to for her, no such bot for others",
    request: async () => ({ url: `/api/bots/${items.bots.A}/rollback`, body: {} }),
    expect: byCaller({ memberA: 409, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/bots/{name}/versions",
    request: async () => ({ url: `/api/bots/${items.bots.A}/versions` }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/bots/{name}/env",
    request: async () => ({ url: `/api/bots/${items.bots.A}/env` }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "PATCH /api/bots/{name}/env",
    what: "ana's stopped bot: a change restarts a running bot only (409 for her), others have no such bot",
    request: async () => ({ url: `/api/bots/${items.bots.A}/env`, body: { set: { GREETING: "hi" } } }),
    expect: byCaller({ memberA: 409, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/bots/{name}/stats",
    request: async () => ({ url: `/api/bots/${items.bots.A}/stats` }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/bots/{name}/alerts",
    request: async () => ({ url: `/api/bots/${items.bots.A}/alerts` }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/bots/{name}/webhook",
    what: "ana's bot takes no webhooks: 404 for her too, with the hint to start it with --webhook",
    request: async () => ({ url: `/api/bots/${items.bots.A}/webhook` }),
    expect: byCaller({ memberA: 404, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/bots/{name}/logs/download",
    what: "ana's stopped bot, on no runner: hers has no log to fetch, others have no such bot",
    request: async () => ({ url: `/api/bots/${items.bots.A}/logs/download` }),
    expect: byCaller({ memberA: 503, memberB: 404, adminA: 404, platform: 404, outside: 404 }),
  },
  {
    route: "POST /api/bots/{name}/hook/{path}",
    what: "public, answered by the bot's secret alone: a wrong one is no such bot for every caller, with or without a token",
    request: async () => ({ url: `/api/bots/bot_nosuchbot/hook/wrong-secret/x`, body: { update_id: 1 } }),
    expect: everyone(404),
  },
  {
    route: "POST /jobs",
    what: "the orchestrator API's bot_runner: any user; list shows the caller's own bots",
    request: async () => ({ url: "/jobs", body: { blueprint: "bot_runner", data: { action: "list" } } }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.data.bots.some((bot: Json) => bot.name === `bot-${tenant.toLowerCase()}`),
      who: { memberA: "A", memberB: "B", tokenB: "", adminA: "", platform: "", outside: "" },
    },
  },
  { route: "GET /openapi.json", request: async () => ({ url: "/openapi.json" }), expect: everyone(200) },
  {
    route: "POST /api/auth/login",
    request: async () => ({ url: "/api/auth/login", body: { username: "ana", password } }),
    expect: everyone(200),
  },
  {
    route: "POST /api/auth/logout",
    what: "ends the session shown; an API token is no session: 200 logged_out false, the token stays valid",
    request: async () => ({ url: "/api/auth/logout" }),
    expect: anyUser(200),
    freshSession: true,
  },
  { route: "GET /api/auth/whoami", request: async () => ({ url: "/api/auth/whoami" }), expect: anyUser(200) },
  {
    route: "GET /api/runs",
    request: async () => ({ url: "/api/runs?limit=500" }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.runs.some((run: Json) => run.id === items.runs[tenant]),
      who: { memberA: "A", memberB: "B", adminA: "A", platform: "AB", outside: "" },
    },
  },
  {
    route: "POST /api/runs",
    request: async () => ({ url: "/api/runs", body: { workflow } }),
    expect: anyUser(201),
  },
  {
    route: "POST /api/workflows/validate",
    what: "any user; stores and runs nothing",
    request: async () => ({ url: "/api/workflows/validate", body: { workflow } }),
    expect: anyUser(200),
  },
  {
    route: "POST /api/workflows",
    what: "any user saves in its own tenant (a platform admin outside any tenant)",
    request: async () => ({ url: "/api/workflows", body: { name: fresh("saved-"), workflow } }),
    expect: anyUser(201),
  },
  {
    route: "GET /api/workflows",
    what: "the caller's tenant's; a platform admin every tenant's",
    request: async () => ({ url: "/api/workflows" }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.workflows.some((w: Json) => w.name === `flow-${tenant.toLowerCase()}`),
      who: { memberA: "A", memberB: "B", adminA: "A", platform: "AB", outside: "" },
    },
  },
  {
    route: "GET /api/workflows/{name}",
    what: "tenant A's saved workflow: A's callers; a platform admin names the tenant (?tenant=A), so 404 without",
    request: async () => ({ url: "/api/workflows/flow-a" }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 200, platform: 404, outside: 404 }),
  },
  {
    route: "POST /api/workflows/{name}/runs",
    what: "tenant A's saved workflow: run by A's callers, absent for others",
    request: async () => ({ url: "/api/workflows/flow-a/runs", body: { vars: {} } }),
    expect: byCaller({ memberA: 201, memberB: 404, adminA: 201, platform: 404, outside: 404 }),
  },
  {
    route: "POST /api/workflows/{name}/promote",
    what: "a version A's member saved over a hook of A's admin: promoted by A's admin only (its saver 403)",
    request: async () => {
      const name = fresh("promoted-flow-");
      await ok("POST", "/api/workflows", credentials.memberA, { name, workflow });
      await ok("POST", "/api/hooks", credentials.adminA, { name: fresh("promote-hook-"), workflow: name });
      const pending = await ok("POST", "/api/workflows", credentials.memberA, { name, workflow });
      expect(pending.promoted).toBe(false);
      return { url: `/api/workflows/${name}/promote`, body: { version: 2 } };
    },
    expect: byCaller({ memberA: 403, memberB: 404, adminA: 200, platform: 404, outside: 404 }),
  },
  {
    route: "DELETE /api/workflows/{name}",
    what: "a fresh saved workflow of A's each time: removed by A's callers only",
    request: async () => {
      const name = fresh("gone-flow-");
      await ok("POST", "/api/workflows", credentials.memberA, { name, workflow });
      return { url: `/api/workflows/${name}` };
    },
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 200, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/schedules",
    request: async () => ({ url: "/api/schedules" }),
    expect: anyUser(200),
  },
  {
    route: "GET /api/runs/{id}",
    request: async () => ({ url: `/api/runs/${items.runs.A}` }),
    expect: ofTenantA(200),
  },
  {
    route: "POST /api/runs/{id}/cancel",
    request: async () => ({ url: `/api/runs/${await runOf("memberA")}/cancel` }),
    expect: ofTenantA(200),
  },
  ...(["approve", "reject"] as const).map(
    (verb): Row => ({
      route: `POST /api/runs/{id}/steps/{step}/${verb}`,
      what: "role:member: anyone of the run's tenant; a platform admin is no approver of a tenant's run",
      request: async () => ({
        url: `/api/runs/${await waitingApprovalOfA()}/steps/gate/${verb}`,
        body: { comment: "checked" },
      }),
      expect: byCaller({ memberA: 200, memberB: 404, adminA: 200, platform: 403, outside: 404 }),
    }),
  ),
  {
    route: "POST /api/runs/{id}/stream-token",
    request: async () => ({ url: `/api/runs/${items.runs.A}/stream-token` }),
    expect: ofTenantA(201),
  },
  {
    route: "GET /api/runs/{id}/events",
    request: async () => ({ url: `/api/runs/${items.runs.A}/events?follow=0` }),
    expect: ofTenantA(200),
  },
  {
    route: "GET /api/runs/{id}/events/page",
    request: async () => ({ url: `/api/runs/${items.runs.A}/events/page?limit=5` }),
    expect: ofTenantA(200),
  },
  {
    route: "GET /api/runs/{id}/log",
    request: async () => ({ url: `/api/runs/${items.runs.A}/log` }),
    expect: ofTenantA(200),
  },
  {
    route: "POST /api/runs/{id}/rerun",
    request: async () => ({ url: `/api/runs/${items.runs.A}/rerun` }),
    expect: ofTenantA(201),
  },
  {
    route: "POST /api/runs/{id}/retry",
    what: "tenant A's run, still queued: A's callers are told it is not finished (409), others that it does not exist",
    request: async () => ({ url: `/api/runs/${items.runs.A}/retry`, body: {} }),
    expect: ofTenantA(409),
  },
  {
    route: "GET /api/runs/{id}/retry-plan",
    what: "tenant A's run, still queued: A's callers are told it is not finished (409), others that it does not exist",
    request: async () => ({ url: `/api/runs/${items.runs.A}/retry-plan` }),
    expect: ofTenantA(409),
  },
  {
    route: "GET /api/runs/{id}/workflow",
    what: "tenant A's run's text: its submitter and admins (a platform admin, A's admin), not other tenants",
    request: async () => ({ url: `/api/runs/${items.runs.A}/workflow` }),
    expect: ofTenantA(200),
  },
  {
    route: "POST /api/runs/{id}/run-step",
    what: "tenant A's run, still queued: A's callers are told it is not finished (409), others that it does not exist",
    request: async () => ({ url: `/api/runs/${items.runs.A}/run-step`, body: { step: "hi" } }),
    expect: ofTenantA(409),
  },
  {
    route: "GET /api/runs/{id}/diff",
    what: "tenant A's workflow run: not an agent run for A's callers, no such run for others",
    request: async () => ({ url: `/api/runs/${items.runs.A}/diff` }),
    expect: ofTenantA(400),
  },
  {
    route: "POST /api/runs/{id}/review-comments",
    what: "tenant A's workflow run: A's callers are told the file is not in its diff, others that the run does not exist",
    request: async () => ({
      url: `/api/runs/${items.runs.A}/review-comments`,
      body: { path: "a.txt", line: 1, text: "use b" },
    }),
    expect: ofTenantA(400),
  },
  {
    route: "POST /api/runs/{id}/push",
    what: "tenant A's workflow run: not an agent run on a repo for A's callers (400), no such run for others",
    request: async () => ({ url: `/api/runs/${items.runs.A}/push`, body: {} }),
    expect: ofTenantA(400),
  },
  {
    route: "POST /api/runs/{id}/pull-request",
    what: "tenant A's workflow run: not an agent run on a repo for A's callers (400), no such run for others",
    request: async () => ({ url: `/api/runs/${items.runs.A}/pull-request`, body: {} }),
    expect: ofTenantA(400),
  },
  {
    route: "GET /run-status",
    request: async () => ({ url: `/run-status?run_id=${items.runs.A}` }),
    expect: ofTenantA(200),
  },
  {
    route: "PUT /api/jobs/{job_id}/artifacts/{name}",
    what: "runner tokens only, for a job leased to their runner",
    request: async () => ({
      url: `/api/jobs/${await jobLeasedToRunner()}/artifacts/test-output.txt`,
      raw: { contentType: "text/plain", payload: "1 passed\n" },
    }),
    expect: {
      ...byCaller({ memberA: 403, memberB: 403, adminA: 403, platform: 403, outside: 403 }),
      runner: 201,
    },
  },
  {
    route: "GET /api/runs/{id}/artifacts",
    request: async () => ({ url: `/api/runs/${items.runs.A}/artifacts` }),
    expect: ofTenantA(200),
    check: (caller, body) =>
      expect(
        body.artifacts.map((artifact: Json) => artifact.name),
        caller,
      ).toEqual(["diff.patch"]),
  },
  {
    route: "GET /api/runs/{id}/artifacts/{name}",
    request: async () => ({ url: `/api/runs/${items.runs.A}/artifacts/diff.patch` }),
    expect: ofTenantA(200),
    check: (caller, body) => expect(body, caller).toBe("+a change of A\n"),
  },
  {
    route: "GET /api/runners",
    request: async () => ({ url: "/api/runners" }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.some((runner: Json) => runner.id === `runner-${tenant}`),
      who: { memberA: "A", memberB: "B", adminA: "A", platform: "AB", outside: "" },
    },
  },
  {
    route: "GET /api/secrets",
    what: "the caller's tenant's secrets (an admin token: those outside any tenant)",
    request: async () => ({ url: "/api/secrets" }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.secrets.some((secret: Json) => secret.name === `SECRET_${tenant}`),
      who: { memberA: "A", memberB: "B", adminA: "A", platform: "", outside: "" },
    },
  },
  {
    route: "GET /api/secrets",
    what: "?tenant=A: an admin token, or a caller of tenant A",
    request: async () => ({ url: "/api/secrets?tenant=A" }),
    expect: byCaller({ memberA: 200, memberB: 403, adminA: 200, platform: 200, outside: 403 }),
    sees: {
      find: (body, tenant) => body.secrets.some((secret: Json) => secret.name === `SECRET_${tenant}`),
      who: { memberA: "A", adminA: "A", platform: "A" },
    },
  },
  {
    route: "PUT /api/secrets/{name}",
    what: "sets a secret of the caller's own tenant",
    request: async () => ({ url: `/api/secrets/${fresh("NEW_SECRET_")}`, body: { value: "a-secret-value" } }),
    expect: anyUser(201),
    check: (caller, body) =>
      expect(body.tenant_id, caller).toBe(
        { memberA: "A", memberB: "B", tokenB: "B", adminA: "A" }[caller as "memberA"] ?? null,
      ),
  },
  {
    route: "PUT /api/secrets/{name}",
    what: "A's secret's name, from tenant B: sets B's own, A's stays",
    request: async () => ({ url: "/api/secrets/SECRET_A", body: { value: "b-secret-value" } }),
    expect: byCaller({ memberA: 200, memberB: 201, tokenB: 200, adminA: 200, platform: 201, outside: 200 }),
    check: (caller, body) =>
      expect(body.tenant_id, caller).toBe(
        { memberA: "A", memberB: "B", tokenB: "B", adminA: "A" }[caller as "memberA"] ?? null,
      ),
  },
  {
    route: "DELETE /api/secrets/{name}",
    what: "tenant A's secret, with ?tenant=A",
    request: async () => {
      const name = fresh("GONE_A_");
      await ok("PUT", `/api/secrets/${name}`, credentials.memberA, { value: "a-secret-value" });
      return { url: `/api/secrets/${name}?tenant=A` };
    },
    expect: byCaller({ memberA: 200, memberB: 403, adminA: 200, platform: 200, outside: 403 }),
  },
  {
    route: "DELETE /api/secrets/{name}",
    what: "tenant A's secret, without ?tenant=",
    request: async () => {
      const name = fresh("GONE_A_");
      await ok("PUT", `/api/secrets/${name}`, credentials.memberA, { value: "a-secret-value" });
      return { url: `/api/secrets/${name}` };
    },
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 200, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/tokens",
    request: async () => ({ url: "/api/tokens" }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.some((token: Json) => token.id === items.tokens[tenant]),
      who: { memberA: "A", memberB: "B", tokenB: "", adminA: "A", platform: "AB", outside: "" },
    },
    check: (caller, body) => {
      if (caller === "outside" || caller === "tokenB")
        expect(body.length, `${caller} sees itself only`).toBe(1);
    },
  },
  {
    route: "POST /api/tokens",
    what: '{"kind":"user"}: a personal token of a logged-in user, or any admin',
    request: async () => ({ url: "/api/tokens", body: { kind: "user" } }),
    expect: byCaller({ memberA: 201, memberB: 201, tokenB: 403, adminA: 201, platform: 201, outside: 403 }),
  },
  {
    route: "POST /api/tokens",
    what: '{"kind":"runner"}: admins only',
    request: async () => ({ url: "/api/tokens", body: { kind: "runner", group: "linux" } }),
    expect: adminOnly(201),
  },
  {
    route: "POST /api/tokens",
    what: '{"kind":"admin","tenant_id":"B"}: the platform admin only',
    request: async () => ({ url: "/api/tokens", body: { kind: "admin", tenant_id: "B" } }),
    expect: adminOnly(201, 403),
  },
  {
    route: "DELETE /api/tokens/{id}",
    what: "a personal token of a member of A",
    request: async () => ({
      url: `/api/tokens/${(await ok("POST", "/api/tokens", credentials.memberA, { kind: "user" })).id}`,
    }),
    expect: ofTenantA(200),
  },
  {
    route: "GET /api/users",
    request: async () => ({ url: "/api/users" }),
    expect: adminOnly(200),
    sees: {
      find: (body, tenant) => body.some((user: Json) => user.username === (tenant === "A" ? "ana" : "bob")),
      who: { adminA: "A", platform: "AB" },
    },
  },
  {
    route: "POST /api/users",
    what: "a member of tenant A",
    request: async () => ({
      url: "/api/users",
      body: { username: fresh("new"), role: "member", tenant_id: "A", password },
    }),
    expect: adminOnly(201),
  },
  {
    route: "POST /api/users",
    what: "an admin without tenant_id: a platform admin, or A's admin's own tenant's admin",
    request: async () => ({ url: "/api/users", body: { username: fresh("root"), role: "admin", password } }),
    expect: adminOnly(201),
    check: (caller, body) => expect(body.user.tenant_id, caller).toBe(caller === "adminA" ? "A" : null),
  },
  {
    route: "POST /api/users",
    what: "a member of tenant B",
    request: async () => ({
      url: "/api/users",
      body: { username: fresh("new"), role: "member", tenant_id: "B", password },
    }),
    expect: adminOnly(201, 403),
  },
  {
    route: "DELETE /api/users/{username}",
    what: "a member of tenant A",
    request: async () => ({ url: `/api/users/${await addUser("member", "A")}` }),
    expect: adminOnly(200),
  },
  {
    route: "DELETE /api/users/{username}",
    what: "a member of tenant B: invisible to A's admin",
    request: async () => ({ url: `/api/users/${await addUser("member", "B")}` }),
    expect: adminOnly(200, 404),
  },
  {
    route: "POST /api/users/{username}/password",
    what: "a member of tenant A",
    request: async () => ({
      url: `/api/users/${await addUser("member", "A")}/password`,
      body: { password: "another-password-123" },
    }),
    expect: adminOnly(200),
  },
  {
    route: "POST /api/users/{username}/password",
    what: "the platform admin's own user: invisible to A's admin",
    request: async () => ({
      url: `/api/users/${await addUser("admin", null)}/password`,
      body: { password: "another-password-123" },
    }),
    expect: adminOnly(200, 404),
  },
  {
    route: "GET /api/usage",
    what: "any user: their own tenant's spend only (members of B see nothing of A's)",
    request: async () => ({ url: "/api/usage" }),
    expect: anyUser(200),
    check: (caller, body) => {
      const own: Partial<Record<Caller, string | null>> = {
        memberA: "A",
        memberB: "B",
        tokenB: "B",
        adminA: "A",
        platform: null,
        outside: "",
      };
      expect(body.tenant).toBe(own[caller]);
    },
  },
  {
    route: "GET /api/budgets/tenants/{tenant}",
    what: "tenant A's budget: read by A's callers and platform admins; absent for others",
    request: async () => ({ url: "/api/budgets/tenants/A" }),
    expect: ofTenantA(200),
  },
  {
    route: "PUT /api/budgets/tenants/{tenant}",
    what: "platform admins only: a tenant's own admin may not raise its budget",
    request: async () => ({ url: "/api/budgets/tenants/A", body: { usd_per_day: 50 } }),
    expect: byCaller({ memberA: 403, memberB: 403, adminA: 403, platform: 200, outside: 403 }),
  },
  {
    route: "DELETE /api/budgets/tenants/{tenant}",
    request: async () => ({ url: "/api/budgets/tenants/A" }),
    expect: byCaller({ memberA: 403, memberB: 403, adminA: 403, platform: 200, outside: 403 }),
  },
  {
    route: "GET /api/bot-alerts/tenants/{tenant}",
    what: "tenant A's bot alert rules: read by A's callers (the bot page shows them) and platform admins",
    request: async () => ({ url: "/api/bot-alerts/tenants/A" }),
    expect: ofTenantA(200),
  },
  {
    route: "PUT /api/bot-alerts/tenants/{tenant}",
    what: "A's admin and platform admins; a teammate may not, another tenant finds no tenant A",
    request: async () => ({
      url: "/api/bot-alerts/tenants/A",
      body: { alerts: [{ kind: "unhealthy" }], notify: ["https://hooks.example.com/bots"] },
    }),
    expect: byCaller({ memberA: 403, memberB: 404, adminA: 200, platform: 200, outside: 404 }),
  },
  {
    route: "DELETE /api/bot-alerts/tenants/{tenant}",
    request: async () => ({ url: "/api/bot-alerts/tenants/A" }),
    expect: byCaller({ memberA: 403, memberB: 404, adminA: 200, platform: 200, outside: 404 }),
  },
  {
    route: "GET /api/budgets/users/{username}",
    what: "ana's budget: read by her and her admins; absent for others",
    request: async () => ({ url: "/api/budgets/users/ana" }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 200, platform: 200, outside: 404 }),
  },
  {
    route: "PUT /api/budgets/users/{username}",
    what: "ana's admins only: she may not raise her own",
    request: async () => ({ url: "/api/budgets/users/ana", body: { usd_per_day: 5 } }),
    expect: byCaller({ memberA: 403, memberB: 404, adminA: 200, platform: 200, outside: 404 }),
  },
  {
    route: "DELETE /api/budgets/users/{username}",
    what: "a budget of ana's that her admin set (one a platform admin set binds her admin: budgets.test.ts)",
    request: async () => {
      await ok("DELETE", "/api/budgets/users/ana", credentials.platform);
      await ok("PUT", "/api/budgets/users/ana", credentials.adminA, { usd_per_day: 5 });
      return { url: "/api/budgets/users/ana" };
    },
    expect: byCaller({ memberA: 403, memberB: 404, adminA: 200, platform: 200, outside: 404 }),
  },
  {
    route: "GET /api/audit",
    what: "admins only; a tenant admin reads its own tenant's entries",
    request: async () => ({ url: "/api/audit" }),
    expect: adminOnly(200),
    check: (caller, body) => {
      if (caller !== "adminA") return;
      const entries: Json[] = Array.isArray(body) ? body : (body.events ?? body.entries ?? []);
      for (const entry of entries) expect(entry.tenant_id, "a tenant admin sees its tenant only").toBe("A");
    },
  },
  {
    route: "POST /api/hooks",
    what: "a hook of the caller's tenant, running that tenant's saved workflow",
    request: async (caller) => ({
      url: "/api/hooks",
      body: {
        name: fresh("hook-new-"),
        workflow:
          { memberA: "wf-a", adminA: "wf-a", memberB: "wf-b", tokenB: "wf-b" }[caller as "memberA"] ??
          "wf-none",
      },
    }),
    expect: anyUser(201),
    check: (caller, body) =>
      expect(body.tenant_id, caller).toBe(
        { memberA: "A", memberB: "B", tokenB: "B", adminA: "A" }[caller as "memberA"] ?? null,
      ),
  },
  {
    route: "POST /api/hooks",
    what: "A's saved workflow, from outside tenant A: 404, as one that does not exist (an admin token makes hooks outside any tenant)",
    request: async () => ({ url: "/api/hooks", body: { name: fresh("hook-of-a-"), workflow: "wf-a" } }),
    expect: byCaller({ memberA: 201, memberB: 404, adminA: 201, platform: 404, outside: 404 }),
  },
  {
    route: "GET /api/hooks",
    what: "the caller's tenant's hooks (an admin token: every tenant's)",
    request: async () => ({ url: "/api/hooks" }),
    expect: anyUser(200),
    sees: {
      find: (body, tenant) => body.hooks.some((hook: Json) => hook.name === `hook-${tenant.toLowerCase()}`),
      who: { memberA: "A", memberB: "B", adminA: "A", platform: "AB", outside: "" },
    },
  },
  {
    route: "GET /api/hooks/{name}",
    what: "tenant A's hook: names are per tenant, so a platform admin names the tenant (?tenant=A), 404 without",
    request: async () => ({ url: "/api/hooks/hook-a" }),
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 200, platform: 404, outside: 404 }),
  },
  {
    route: "DELETE /api/hooks/{name}",
    what: "tenant A's hook",
    request: async () => {
      const name = fresh("hook-gone-");
      await ok("POST", "/api/hooks", credentials.memberA, { name, workflow: "wf-a" });
      return { url: `/api/hooks/${name}` };
    },
    expect: byCaller({ memberA: 200, memberB: 404, adminA: 200, platform: 404, outside: 404 }),
  },
  {
    route: "POST /api/hooks/{name}",
    what: "a delivery: its signature is its only credential, and no token stands for it",
    request: async () => ({ url: "/api/hooks/hook-a", body: { ref: "refs/heads/main" } }),
    expect: everyone(401),
  },
  {
    route: "POST /api/forges",
    what: "a forge repo of the caller's tenant (on github.com; another API only for a platform admin)",
    request: async () => ({
      url: "/api/forges",
      body: { kind: "github", repo: "acme/app", token: "ghp_matrix" },
    }),
    expect: anyUser(201),
    check: (caller, body) => {
      expect(body.tenant_id, caller).toBe(
        { memberA: "A", memberB: "B", tokenB: "B", adminA: "A" }[caller as "memberA"] ?? null,
      );
      expect(JSON.stringify(body), "the token is never answered").not.toContain("ghp_matrix");
    },
  },
  {
    route: "POST /api/forges",
    what: "a forge on another API than github.com: the server would call it, so only a platform admin may",
    request: async () => ({
      url: "/api/forges",
      body: { kind: "github", repo: "acme/app", token: "ghp_matrix", api_url: "http://10.0.0.5:8080" },
    }),
    expect: byCaller({ memberA: 403, memberB: 403, adminA: 403, platform: 201, outside: 403 }),
  },
  {
    route: "POST /api/forges",
    what: "a GitLab or Gitea forge on a server of its own: the server would call it, so only a platform admin may",
    request: async () => ({
      url: "/api/forges",
      body: { kind: "gitlab", repo: "acme/app", token: "glpat-matrix", api_url: "http://10.0.0.5:8080" },
    }),
    expect: byCaller({ memberA: 403, memberB: 403, adminA: 403, platform: 201, outside: 403 }),
  },
  {
    route: "GET /api/forges",
    what: "the caller's tenant's forges (an admin token: every tenant's)",
    request: async () => ({ url: "/api/forges" }),
    expect: anyUser(200),
    check: (caller, body) => {
      const tenant = { memberA: "A", memberB: "B", adminA: "A" }[caller as "memberA"];
      if (tenant) for (const forge of body.forges) expect(forge.tenant_id, caller).toBe(tenant);
      expect(JSON.stringify(body)).not.toContain("ghp_matrix");
    },
  },
  {
    route: "DELETE /api/forges/{id}",
    what: "tenant A's forge",
    request: async () => {
      const forge = await ok("POST", "/api/forges", credentials.memberA, {
        kind: "github",
        repo: "acme/app",
        token: "ghp_matrix",
      });
      return { url: `/api/forges/${forge.id}` };
    },
    expect: ofTenantA(200),
  },
  {
    route: "POST /api/forges/{id}/webhook",
    what: "a delivery: its signature is its only credential, and no token stands for it",
    request: async () => {
      const forge = await ok("POST", "/api/forges", credentials.memberA, {
        kind: "github",
        repo: "acme/app",
        token: "ghp_matrix",
      });
      return { url: `/api/forges/${forge.id}/webhook`, body: { action: "labeled" } };
    },
    expect: everyone(401),
  },
  {
    route: "GET /metrics",
    what: "spans every tenant: an admin token or a user token outside any tenant",
    request: async () => ({ url: "/metrics" }),
    expect: byCaller({ memberA: 403, memberB: 403, adminA: 403, platform: 200, outside: 200 }),
  },
];

/** Each route of /openapi.json, as `METHOD /path`, and whether it is public (`security: []`). */
async function apiRoutes(): Promise<{ route: string; public: boolean }[]> {
  const spec = (await call("GET", "/openapi.json", undefined)).body;
  const routes: { route: string; public: boolean }[] = [];
  for (const [path, operations] of Object.entries<Json>(spec.paths)) {
    for (const [method, operation] of Object.entries<Json>(operations)) {
      const security = operation.security ?? spec.security;
      routes.push({
        route: `${method.toUpperCase()} ${path}`,
        public: Array.isArray(security) && security.length === 0,
      });
    }
  }
  return routes;
}

describe("who may do what (docs/security.md)", () => {
  it("has a row for every route of /openapi.json", async () => {
    const documented = new Set(rows.map((row) => row.route));
    const missing = (await apiRoutes()).map((r) => r.route).filter((route) => !documented.has(route));
    expect(missing).toEqual([]);
  });

  it.each(rows.map((row) => ({ what: "", ...row })))("$route $what", async (row) => {
    const [method] = row.route.split(" ");
    const answers: string[] = [];
    for (const caller of callers) {
      const token =
        row.freshSession && ["memberA", "memberB", "adminA"].includes(caller)
          ? await login({ memberA: "ana", memberB: "bob", adminA: "alice" }[caller as "memberA"])
          : credentials[caller];
      const { url, body, raw } = await row.request(caller);
      const answer = await call(method ?? "GET", url, token, body, raw);
      answers.push(`${caller}: ${answer.status}`);
      expect(answer.status, `${caller}: ${JSON.stringify(answer.body)}`).toBe(row.expect[caller]);
      if (answer.status < 300) row.check?.(caller, answer.body);
      if (answer.status >= 400) {
        expect(answer.body.error.code, caller).toEqual(expect.any(String));
        // Another tenant's object is absent, never forbidden.
        if (row.expect[caller] === 404) expect(answer.body.error.code).toBe("NOT_FOUND");
      }
      const seen = row.sees?.who[caller] ?? (caller === "tokenB" ? row.sees?.who.memberB : undefined);
      if (row.sees && answer.status === 200 && seen !== undefined) {
        for (const tenant of ["A", "B"] as const) {
          expect(row.sees.find(answer.body, tenant), `${caller} sees tenant ${tenant}'s item`).toBe(
            seen.includes(tenant),
          );
        }
      }
    }
    expect(answers.length).toBe(callers.length);
  });

  it("a stream token opens its own run's events and nothing else", async () => {
    const stream = (await ok("POST", `/api/runs/${items.runs.A}/stream-token`, credentials.memberA)).token;
    expect(
      (await call("GET", `/api/runs/${items.runs.A}/events?follow=0&access_token=${stream}`, undefined))
        .status,
    ).toBe(200);
    expect((await call("GET", `/api/runs/${items.runs.A}/events?follow=0`, stream)).status).toBe(200);
    expect((await call("GET", `/api/runs/${items.runs.B}/events?follow=0`, stream)).status).toBe(401);
    expect((await call("GET", `/api/runs/${items.runs.A}`, stream)).status).toBe(401);
    // A raw log download link carries one too; another run's log stays closed.
    expect(
      (await call("GET", `/api/runs/${items.runs.A}/log?access_token=${stream}`, undefined)).status,
    ).toBe(200);
    expect(
      (await call("GET", `/api/runs/${items.runs.B}/log?access_token=${stream}`, undefined)).status,
    ).toBe(401);
    expect((await call("GET", `/api/runs/${items.runs.A}/events/page`, stream)).status).toBe(401);
  });
});

/** What a runner socket answered: the HTTP status of a refused upgrade, or the first message and the close. */
interface SocketAnswer {
  status?: number;
  message?: Json;
  closeCode?: number;
}

/**
 * Connects to the runner socket as a runner (or an attacker) would, says `hello` when given one,
 * and reads the answer: a refused upgrade's status, or the first message and, for an error, the
 * close that follows it.
 */
function runnerSocket(token: string | undefined, hello?: Record<string, unknown>): Promise<SocketAnswer> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}${runnerSocketPath}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error("the runner socket answered nothing within 10 s"));
    }, 10_000);
    const done = (answer: SocketAnswer) => {
      clearTimeout(timer);
      resolve(answer);
    };
    let first: Json;
    socket.on("unexpected-response", (_request, response) => {
      done({ status: response.statusCode ?? 0 });
      socket.terminate();
    });
    socket.on("error", () => undefined);
    socket.on("open", () => {
      if (hello) socket.send(JSON.stringify({ type: "hello", jobs: [], ...hello }));
      else done({ status: 101 });
    });
    socket.on("message", (data) => {
      first ??= JSON.parse(String(data));
      if (first.type !== "error") {
        done({ message: first });
        socket.close();
      }
    });
    socket.on("close", (code) => done({ message: first, closeCode: code }));
  });
}

const runnerInfo = (id: string, more: Record<string, unknown> = {}) => ({
  runner: { id, hostname: "matrix", group: "linux", ...more },
});

describe("who may use the runner socket (docs/security.md)", () => {
  const tokens = { A: "", B: "", platform: "", revoked: "" };
  beforeAll(async () => {
    tokens.A = await makeToken(server, "runner", { tenant_id: "A" });
    tokens.B = await makeToken(server, "runner", { tenant_id: "B" });
    tokens.platform = await makeToken(server, "runner");
    const revoked = await ok("POST", "/api/tokens", adminToken, { kind: "runner", name: "revoked" });
    await ok("DELETE", `/api/tokens/${revoked.id}`, adminToken);
    tokens.revoked = revoked.token;
    // A's runner registers its id, which then belongs to A's token.
    expect((await runnerSocket(tokens.A, runnerInfo("socket-A"))).message?.type).toBe("welcome");
  });

  const socketRows: {
    what: string;
    answer: () => Promise<SocketAnswer>;
    expect: { status?: number; welcome?: true; code?: string };
  }[] = [
    { what: "no token: 401", answer: () => runnerSocket(undefined), expect: { status: 401 } },
    { what: "a user token: 403", answer: () => runnerSocket(credentials.tokenB), expect: { status: 403 } },
    {
      what: "a member's session (not a runner token, nor any API token): 401",
      answer: () => runnerSocket(credentials.memberA),
      expect: { status: 401 },
    },
    { what: "an admin token: 403", answer: () => runnerSocket(adminToken), expect: { status: 403 } },
    {
      what: "a revoked runner token: 401",
      answer: () => runnerSocket(tokens.revoked),
      expect: { status: 401 },
    },
    {
      what: "tenant B's runner token saying it is tenant A's: refused",
      answer: () => runnerSocket(tokens.B, runnerInfo("b-as-a", { tenant_id: "A" })),
      expect: { code: "RUNNER_TENANT_MISMATCH" },
    },
    {
      what: "tenant B's runner token saying hello under tenant A's runner id: refused",
      answer: () => runnerSocket(tokens.B, runnerInfo("socket-A")),
      expect: { code: "RUNNER_ID_TAKEN" },
    },
    {
      what: "tenant B's runner token saying it is shared: refused",
      answer: () => runnerSocket(tokens.B, runnerInfo("b-shared", { shared: true, isolation: "sandbox" })),
      expect: { code: "RUNNER_SHARED_TENANT" },
    },
    {
      what: "a runner token outside any tenant saying shared while isolating nothing: refused",
      answer: () =>
        runnerSocket(tokens.platform, runnerInfo("open-shared", { shared: true, isolation: "none" })),
      expect: { code: "RUNNER_CANNOT_ISOLATE" },
    },
    {
      what: "a runner token outside any tenant saying shared and isolating: welcome",
      answer: () =>
        runnerSocket(tokens.platform, runnerInfo("sandboxed", { shared: true, isolation: "sandbox" })),
      expect: { welcome: true },
    },
    {
      what: "tenant B's runner token saying hello as itself: welcome",
      answer: () => runnerSocket(tokens.B, runnerInfo("socket-B")),
      expect: { welcome: true },
    },
  ];

  it.each(socketRows)("$what", async (row) => {
    const answer = await row.answer();
    if (row.expect.status !== undefined) {
      expect(answer.status, JSON.stringify(answer)).toBe(row.expect.status);
      return;
    }
    if (row.expect.welcome) {
      expect(answer.message, JSON.stringify(answer)).toMatchObject({ type: "welcome" });
      return;
    }
    expect(answer.message, JSON.stringify(answer)).toMatchObject({
      type: "error",
      code: row.expect.code,
      hint: expect.any(String),
    });
    expect(answer.closeCode).toBe(4003);
  });

  it("a refused shared runner is not recorded; an accepted one is listed as shared with its isolation", async () => {
    const runners: Json[] = await ok("GET", "/api/runners", adminToken);
    const ids = runners.map((runner) => runner.id);
    expect(ids).not.toContain("b-shared");
    expect(ids).not.toContain("open-shared");
    expect(runners.find((runner) => runner.id === "sandboxed")).toMatchObject({
      tenant_id: null,
      shared: true,
      isolation: "sandbox",
    });
    expect(runners.find((runner) => runner.id === "socket-B")).toMatchObject({
      tenant_id: "B",
      shared: false,
    });
  });
});

describe("stream tokens end with the credential that asked for them", () => {
  it("a stream token asked with a session ends when the session does, not 5 minutes later", async () => {
    const short = await startInProcessServer({ sessionTtlMs: 1500 });
    try {
      const inject = async (method: "GET" | "POST", url: string, token?: string, body?: unknown) => {
        const response = await short.app.inject({
          method,
          url,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body ? { "content-type": "application/json" } : {}),
          },
          ...(body ? { payload: JSON.stringify(body) } : {}),
        });
        const json = String(response.headers["content-type"]).startsWith("application/json");
        return { status: response.statusCode, body: json ? JSON.parse(response.body) : response.body };
      };
      await inject("POST", "/api/users", adminToken, {
        username: "eve",
        role: "member",
        tenant_id: "A",
        password,
      });
      const session = (await inject("POST", "/api/auth/login", undefined, { username: "eve", password }))
        .body;
      const run = (await inject("POST", "/api/runs", session.token, { workflow })).body.run_id;
      const stream = (await inject("POST", `/api/runs/${run}/stream-token`, session.token)).body;
      expect(Date.parse(stream.expires_at)).toBeLessThanOrEqual(Date.parse(session.expires_at));
      const events = `/api/runs/${run}/events?follow=0&access_token=${stream.token}`;
      expect((await inject("GET", events)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      expect((await inject("GET", "/api/auth/whoami", session.token)).status).toBe(401);
      expect((await inject("GET", events)).status).toBe(401);
    } finally {
      await short.close();
    }
  });
});

describe("API tokens end when they expire", () => {
  it("an API token that has just been used is refused once its expires_at has passed", async () => {
    const soon = await ok("POST", "/api/tokens", adminToken, {
      kind: "user",
      tenant_id: "A",
      expires_at: new Date(Date.now() + 1000).toISOString(),
    });
    expect((await call("GET", "/api/runs", soon.token)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const answer = await call("GET", "/api/runs", soon.token);
    expect(answer.status, JSON.stringify(answer.body)).toBe(401);
  });
});

describe("attacks on every route", () => {
  /** Credentials that must open nothing, each made as an attacker (or time) would. */
  async function badCredentials(): Promise<Record<string, string | undefined>> {
    const key = Buffer.from(await server.store.serverKeys.get("session-hs256"), "base64url");
    const valid = await login("ana");
    const claims = decodeJwt(valid);
    const sign = (payload: Record<string, unknown>, secret: Uint8Array = key) =>
      new SignJWT(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(secret);
    const [head, , signature] = valid.split(".");
    const bob = (await ok("GET", "/api/auth/whoami", credentials.memberB)).user_id;
    const changedPayload = Buffer.from(JSON.stringify({ ...claims, sub: bob })).toString("base64url");
    const loggedOut = await login("ana");
    await ok("POST", "/api/auth/logout", loggedOut);
    const removedUser = await addUser("admin", null);
    const removedSession = await login(removedUser);
    await ok("DELETE", `/api/users/${removedUser}`, adminToken);
    const revokedToken = await ok("POST", "/api/tokens", adminToken, { kind: "admin" });
    await ok("DELETE", `/api/tokens/${revokedToken.id}`, adminToken);
    const { secret: expiredToken } = await server.store.tokens.create({
      kind: "admin",
      name: "expired",
      expires_at: new Date(Date.now() - 60_000).toISOString(),
    });
    const now = Math.floor(Date.now() / 1000);
    return {
      "no token": undefined,
      "empty bearer": "",
      "expired session": await sign({ ...claims, iat: now - 7200, exp: now - 60 }),
      "logged-out session": loggedOut,
      "session of a removed user": removedSession,
      "changed payload": `${head}.${changedPayload}.${signature}`,
      "alg none": new UnsecuredJWT(claims).encode(),
      "wrong key": await sign(claims, new Uint8Array(32).fill(7)),
      "revoked API token": revokedToken.token,
      "expired API token": expiredToken,
      "made-up API token": "ryt_0000000000000000000000000000000000",
    };
  }

  it("no non-public route answers anything but 401 to a missing, expired, revoked or tampered credential", async () => {
    const routes = await apiRoutes();
    const bad = await badCredentials();
    const params: Record<string, string> = {
      "{id}": items.runs.A,
      "{job_id}": await jobLeasedToRunner(),
      "{name}": "SECRET_A",
      "{username}": "ana",
    };
    const bodies: Record<string, unknown> = {
      "POST /api/runs": { workflow },
      "POST /api/tokens": { kind: "admin" },
      "POST /api/users": { username: "mallory", role: "admin", password },
      "PUT /api/secrets/{name}": { value: "overwritten" },
      "POST /api/users/{username}/password": { password: "taken-over-123" },
    };
    let checked = 0;
    for (const { route, public: isPublic } of routes) {
      if (isPublic) continue;
      const [method, path] = route.split(" ") as [string, string];
      let url = path.replace(/\{\w+\}/g, (name) => params[name] ?? "x");
      if (path === "/run-status") url += `?run_id=${items.runs.A}`;
      // A route's bad credentials at once: about 1,000 requests in all, one after another took
      // 23 s on a slow host.
      await Promise.all(
        Object.entries(bad).map(async ([what, token]) => {
          const answer = await call(method, url, token, bodies[route]);
          expect(answer.status, `${route} with ${what}: ${JSON.stringify(answer.body)}`).toBe(401);
          expect(answer.body.error.code).toBe("UNAUTHORIZED");
          checked++;
          // Fastify answers HEAD for every GET route: the same rule holds there.
          if (method === "GET") {
            const head = await call("HEAD", url, token);
            expect(head.status, `HEAD ${path} with ${what}`).toBe(401);
          }
        }),
      );
      // The event stream takes ?access_token= too: the same credentials there open nothing either.
      if (path === "/api/runs/{id}/events") {
        for (const [what, token] of Object.entries(bad)) {
          if (!token) continue;
          const answer = await call(method, `${url}?follow=0&access_token=${token}`, undefined);
          expect(answer.status, `${route}?access_token= with ${what}`).toBe(401);
        }
      }
    }
    expect(checked).toBeGreaterThan(20 * Object.keys(bad).length);
    // Nothing the attacks sent took effect.
    expect((await call("POST", "/api/auth/login", undefined, { username: "ana", password })).status).toBe(
      200,
    );
    expect((await call("GET", "/api/users", adminToken)).body.map((u: Json) => u.username)).not.toContain(
      "mallory",
    );
  });
});
