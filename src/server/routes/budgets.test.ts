import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, injectJson, startInProcessServer } from "../../../test/helpers/in-process.js";
import type { RunningServer } from "../server.js";

/*
 * Who may change a user's spend budget, over HTTP against the real server: a budget a platform
 * admin set on a tenant's admin binds her; she may lower it, never lift or clear it.
 */

let server: RunningServer;

async function call(token: string, method: string, url: string, body?: unknown) {
  return injectJson(server.app, method, url, { token, body });
}

/** A tenant's admin, signed in; returns her session token. */
async function tenantAdmin(username: string, tenant: string): Promise<string> {
  const password = `${username}-password-1234`;
  const added = await call(adminToken, "POST", "/api/users", {
    username,
    role: "admin",
    password,
    tenant_id: tenant,
  });
  expect(added.status, JSON.stringify(added.body)).toBe(201);
  const login = await injectJson(server.app, "POST", "/api/auth/login", { body: { username, password } });
  expect(login.status).toBe(200);
  return login.body.token as string;
}

beforeAll(async () => {
  server = await startInProcessServer();
});

afterAll(async () => {
  await server?.close();
});

describe("a platform admin's budget on a tenant's admin", () => {
  it("lets her lower it, and refuses lifting or clearing it with 403 and a hint", async () => {
    const bea = await tenantAdmin("bea", "bound");
    const set = await call(adminToken, "PUT", "/api/budgets/users/bea", {
      usd_per_day: 10,
      usd_per_month: 100,
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);

    const lifted = await call(bea, "PUT", "/api/budgets/users/bea", { usd_per_day: 50, usd_per_month: 100 });
    expect(lifted.status).toBe(403);
    expect(lifted.body.error.message).toContain(
      "usd_per_day of user bea is 10 dollars, set by a platform admin",
    );
    expect(lifted.body.error.hint).toContain("ask a platform admin");
    const dropped = await call(bea, "PUT", "/api/budgets/users/bea", { usd_per_day: 5 });
    expect(dropped.status).toBe(403);
    expect(dropped.body.error.message).toContain("usd_per_month");
    expect(dropped.body.error.message).toContain("not remove it");
    const cleared = await call(bea, "DELETE", "/api/budgets/users/bea");
    expect(cleared.status).toBe(403);
    expect(cleared.body.error.hint).toContain("ask a platform admin");
    const unchanged = await call(bea, "GET", "/api/budgets/users/bea");
    expect(unchanged.body).toMatchObject({ usd_per_day: 10, usd_per_month: 100, source: "set" });

    const lowered = await call(bea, "PUT", "/api/budgets/users/bea", { usd_per_day: 4, usd_per_month: 100 });
    expect(lowered.status, JSON.stringify(lowered.body)).toBe(200);
    expect(lowered.body).toMatchObject({ usd_per_day: 4, usd_per_month: 100 });
    // Lowered once, the budget still binds her: back up to the platform admin's 10 is a lift too.
    expect(
      (await call(bea, "PUT", "/api/budgets/users/bea", { usd_per_day: 10, usd_per_month: 100 })).status,
    ).toBe(403);

    const platform = await call(adminToken, "DELETE", "/api/budgets/users/bea");
    expect(platform.status).toBe(200);
    expect(platform.body).toMatchObject({ usd_per_day: null, usd_per_month: null, source: "none" });
  });

  it("leaves a budget she set herself hers to raise and clear", async () => {
    const cleo = await tenantAdmin("cleo", "own-budget");
    expect((await call(cleo, "PUT", "/api/budgets/users/cleo", { usd_per_day: 3 })).status).toBe(200);
    expect((await call(cleo, "PUT", "/api/budgets/users/cleo", { usd_per_day: 30 })).status).toBe(200);
    expect((await call(cleo, "DELETE", "/api/budgets/users/cleo")).status).toBe(200);
  });
});
