import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../src/core/logger.js";
import type { QuotaSettings } from "../src/server/quotas.js";
import { type RunningServer, startServer } from "../src/server/server.js";
import { adminToken, injectJson, makeToken, signedInMember } from "./helpers/in-process.js";

/*
 * Quotas through the API of a whole server in this process (real SQLite in memory, no mocks):
 * a submit past a tenant's or a user's limit answers 429 QUOTA_EXCEEDED in seed 001's shape
 * and stores nothing; under the limits it is accepted; the limits are independent.
 */

let server: RunningServer;

afterEach(async () => {
  await server?.close();
});

async function start(quotas: QuotaSettings): Promise<void> {
  server = await startServer({
    host: "127.0.0.1",
    port: 0,
    home: undefined,
    adminToken,
    timings: { heartbeatMs: 1000, leaseMs: 5000 },
    reconnectGraceMs: 1000,
    quotas,
    logger: silentLogger,
    version: "0.0.0-test",
    warn: () => {},
  });
}

async function call(method: string, url: string, token: string | undefined, body?: unknown) {
  return injectJson(server.app, method, url, { token, body });
}

const workflow = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

const submit = (token: string) => call("POST", "/api/runs", token, { workflow });

/**
 * Every run and job the store holds, to prove a refused submit left none behind (events belong
 * to runs: the accepted runs' own events may still land meanwhile, a refused one has no run).
 */
async function stored(): Promise<{ runs: string[]; jobs: number }> {
  const { runs } = await server.store.runs.list({ limit: 500 });
  return { runs: runs.map((run) => run.id), jobs: (await server.store.jobs.list()).length };
}

async function expectRefused(token: string, message: string, hint: string): Promise<void> {
  const before = await stored();
  const answer = await submit(token);
  expect(answer.status, JSON.stringify(answer.body)).toBe(429);
  expect(answer.body).toEqual({
    status: "failure",
    error: {
      code: "QUOTA_EXCEEDED",
      message,
      hint: expect.stringContaining(hint),
      details: expect.objectContaining({ config_key: expect.any(String) }),
    },
  });
  expect(await stored()).toEqual(before);
}

async function expectAccepted(token: string): Promise<void> {
  const answer = await submit(token);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
}

const addUser = (username: string, tenant: string): Promise<string> =>
  signedInMember(server, username, tenant);

describe("quotas", () => {
  it("a tenant at its concurrent-run limit is refused with 429 and nothing stored; under it, accepted", async () => {
    await start({ quotas: { tenants: { acme: { max_concurrent_runs: 2 } } } });
    const acme = await makeToken(server, "user", { tenant_id: "acme" });
    // Carried by this server's replica, as a run its engine works is: a running run of none would
    // be the leader's to adopt, and end, at its next round (under load, before the submit below).
    const running = () =>
      server.store.runs.create({
        kind: "workflow",
        name: "busy",
        status: "running",
        tenant_id: "acme",
        replica_id: server.replica.id,
      });
    await running();
    await expectAccepted(acme);
    await running();
    await expectRefused(
      acme,
      "tenant acme has 2 of 2 concurrent runs",
      "quotas.tenants.acme.max_concurrent_runs",
    );
    // Another tenant is not held back by acme's limit.
    await expectAccepted(await makeToken(server, "user", { tenant_id: "globex" }));
  });

  it("a tenant at its queued-run limit is refused, and accepted again once a run has left the queue", async () => {
    await start({ quotas: { tenants: { acme: { max_queued_runs: 2 } } } });
    const acme = await makeToken(server, "user", { tenant_id: "acme" });
    await expectAccepted(acme);
    await expectAccepted(acme);
    await expectRefused(acme, "tenant acme has 2 of 2 queued runs", "quotas.tenants.acme.max_queued_runs");
    const { runs } = await server.store.runs.list({ tenantId: "acme" });
    expect((await call("POST", `/api/runs/${runs[0]?.id}/cancel`, acme)).status).toBe(200);
    await expectAccepted(acme);
  });

  it("per-user and per-tenant limits are independent; a user's personal tokens count as the user", async () => {
    await start({
      quotas: {
        tenants: { acme: { max_queued_runs: 3 } },
        users: { ann: { max_queued_runs: 1 } },
      },
    });
    const ann = await addUser("ann", "acme");
    const bob = await addUser("bob", "acme");
    await expectAccepted(ann);
    await expectRefused(ann, "user ann has 1 of 1 queued runs", "quotas.users.ann.max_queued_runs");
    const personal = await call("POST", "/api/tokens", ann, { kind: "user", name: "ci" });
    expect(personal.status).toBe(201);
    await expectRefused(personal.body.token, "user ann has 1 of 1 queued runs", "quotas.users.ann");
    // bob has no limit of his own: only acme's 3 queued runs hold him back.
    await expectAccepted(bob);
    await expectAccepted(bob);
    await expectRefused(bob, "tenant acme has 3 of 3 queued runs", "quotas.tenants.acme.max_queued_runs");
    // A user of another tenant is limited by neither.
    await expectAccepted(await addUser("cy", "globex"));
  });

  it("still counts a user's runs submitted through a token they revoked since", async () => {
    await start({ quotas: { users: { ann: { max_queued_runs: 1 } } } });
    const ann = await addUser("ann", "acme");
    const first = await call("POST", "/api/tokens", ann, { kind: "user", name: "laptop" });
    expect(first.status).toBe(201);
    await expectAccepted(first.body.token);
    // Revoking the token that made the queued run does not hand ann a fresh quota.
    expect((await call("DELETE", `/api/tokens/${first.body.id}`, ann)).status).toBe(200);
    const second = await call("POST", "/api/tokens", ann, { kind: "user", name: "laptop-2" });
    await expectRefused(second.body.token, "user ann has 1 of 1 queued runs", "quotas.users.ann");
    await expectRefused(ann, "user ann has 1 of 1 queued runs", "quotas.users.ann");
  });

  it("defaults apply to every tenant and user without its own limit; the hint names both keys", async () => {
    await start({ defaultMaxQueuedRuns: 1, quotas: { tenants: { acme: { max_queued_runs: 2 } } } });
    const other = await makeToken(server, "user", { tenant_id: "other" });
    await expectAccepted(other);
    await expectRefused(other, "tenant other has 1 of 1 queued runs", "quotas.default_max_queued_runs");
    const acme = await makeToken(server, "user", { tenant_id: "acme" });
    await expectAccepted(acme);
    await expectAccepted(acme);
    await expectRefused(acme, "tenant acme has 2 of 2 queued runs", "quotas.tenants.acme.max_queued_runs");
  });
});
