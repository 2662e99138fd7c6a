import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../src/core/logger.js";
import type { RunningServer } from "../src/server/server.js";
import { startServer } from "../src/server/server.js";
import type { AuditEvent } from "../src/store/index.js";
import { type CliResult, runCli, tempDir } from "./helpers/cli.js";
import { adminToken, injectJson, startInProcessServer } from "./helpers/in-process.js";

/*
 * The audit log through the API of a whole server in this process (real SQLite, no mocks):
 * each audited action leaves one entry with its actor and outcome, no entry holds a secret, and
 * only admins read it, a tenant's admin only their tenant's entries.
 */

let server: RunningServer;

beforeEach(async () => {
  server = await startInProcessServer();
});

afterEach(async () => {
  await server.close();
});

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field, as a client would
type Json = any;

async function call(
  method: "GET" | "POST" | "PUT" | "DELETE",
  url: string,
  options: { token?: string; body?: unknown; address?: string } = {},
) {
  return injectJson(server.app, method, url, options);
}

async function allEntries(): Promise<AuditEvent[]> {
  return (await server.store.audit.list({ limit: 500 })).events;
}

async function entriesOf(action: string): Promise<AuditEvent[]> {
  return (await allEntries()).filter((e) => e.action === action);
}

async function addUser(username: string, role: "admin" | "member", tenant?: string, password?: string) {
  const answer = await call("POST", "/api/users", {
    token: adminToken,
    body: { username, role, ...(password ? { password } : {}), ...(tenant ? { tenant_id: tenant } : {}) },
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return { id: answer.body.user.id as string, password: (password ?? answer.body.password) as string };
}

async function session(username: string, password: string): Promise<string> {
  const answer = await call("POST", "/api/auth/login", { body: { username, password } });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.token as string;
}

const workflow = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

describe("audit log", () => {
  it("records each action once, with its actor and outcome, and never a password or secret", async () => {
    const admin = await server.store.tokens.find(adminToken);
    const adminActor = { kind: "admin", user_id: null, token_id: admin?.id, username: null };

    // user add (generated password) and passwd (given password)
    const ann = await addUser("ann", "member", "acme");
    expect(await entriesOf("user.add")).toMatchObject([
      { actor: adminActor, target: "ann", tenant_id: "acme", outcome: "ok", details: { role: "member" } },
    ]);
    const newPassword = "ann-new-password-4242";
    expect(
      (await call("POST", "/api/users/ann/password", { token: adminToken, body: { password: newPassword } }))
        .status,
    ).toBe(200);
    expect(await entriesOf("user.passwd")).toMatchObject([
      { actor: adminActor, target: "ann", tenant_id: "acme", outcome: "ok" },
    ]);

    // login refused, then accepted; logout
    const wrongPassword = "not-the-password-9999";
    const refused = await call("POST", "/api/auth/login", {
      body: { username: "ann", password: wrongPassword },
      address: "10.1.2.3",
    });
    expect(refused.status).toBe(401);
    expect(await entriesOf("login")).toMatchObject([
      {
        actor: { kind: null, user_id: ann.id, token_id: null, username: "ann" },
        address: "10.1.2.3",
        outcome: "denied",
        target: "ann",
      },
    ]);
    const annSession = await session("ann", newPassword);
    const logins = await entriesOf("login");
    expect(logins).toHaveLength(2);
    expect(logins[0]).toMatchObject({
      actor: { kind: "user", user_id: ann.id, token_id: null, username: "ann" },
      tenant_id: "acme",
      outcome: "ok",
    });
    expect((await call("POST", "/api/auth/logout", { token: annSession })).status).toBe(200);
    expect(await entriesOf("logout")).toMatchObject([
      { actor: { kind: "user", user_id: ann.id, username: "ann" }, outcome: "ok", tenant_id: "acme" },
    ]);

    // a personal token created and revoked by its owner
    const annSession2 = await session("ann", newPassword);
    const created = await call("POST", "/api/tokens", {
      token: annSession2,
      body: { kind: "user", name: "ci" },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const tokenSecret = created.body.token as string;
    const tokenId = created.body.id as string;
    expect(await entriesOf("token.create")).toMatchObject([
      {
        actor: { kind: "user", user_id: ann.id, username: "ann" },
        target: tokenId,
        tenant_id: "acme",
        outcome: "ok",
      },
    ]);

    // secrets set (twice: created, then replaced) and removed, by the token
    const secretValue = "s3cr3t-value-never-logged";
    for (const value of [secretValue, `${secretValue}-2`]) {
      const set = await call("PUT", "/api/secrets/DEPLOY_KEY", { token: tokenSecret, body: { value } });
      expect(set.status, JSON.stringify(set.body)).toBeLessThan(300);
    }
    const sets = await entriesOf("secret.set");
    expect(sets).toHaveLength(2);
    expect(sets[1]).toMatchObject({
      actor: { kind: "user", user_id: ann.id, token_id: tokenId, username: "ann" },
      target: "DEPLOY_KEY",
      tenant_id: "acme",
      details: { created: true },
    });
    expect(sets[0]?.details).toEqual({ created: false });
    expect((await call("DELETE", "/api/secrets/DEPLOY_KEY", { token: tokenSecret })).status).toBe(200);
    expect(await entriesOf("secret.rm")).toMatchObject([
      { actor: { token_id: tokenId }, target: "DEPLOY_KEY", tenant_id: "acme", outcome: "ok" },
    ]);

    // a run canceled
    const run = await call("POST", "/api/runs", { token: tokenSecret, body: { workflow } });
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    expect((await call("POST", `/api/runs/${run.body.run_id}/cancel`, { token: tokenSecret })).status).toBe(
      200,
    );
    expect(await entriesOf("run.cancel")).toMatchObject([
      { actor: { token_id: tokenId }, target: run.body.run_id, tenant_id: "acme", outcome: "ok" },
    ]);

    expect((await call("DELETE", `/api/tokens/${tokenId}`, { token: annSession2 })).status).toBe(200);
    expect(await entriesOf("token.revoke")).toMatchObject([
      { actor: { user_id: ann.id, token_id: null }, target: tokenId, tenant_id: "acme", outcome: "ok" },
    ]);

    expect((await call("DELETE", "/api/users/ann", { token: adminToken })).status).toBe(200);
    expect(await entriesOf("user.remove")).toMatchObject([
      { actor: adminActor, target: "ann", tenant_id: "acme", outcome: "ok" },
    ]);

    // Every action left exactly the entries counted above, and none of them holds a secret.
    const all = await allEntries();
    const counts = Object.fromEntries(
      [...new Set(all.map((e) => e.action))].map((a) => [a, all.filter((e) => e.action === a).length]),
    );
    expect(counts).toEqual({
      "user.add": 1,
      "user.passwd": 1,
      login: 3,
      logout: 1,
      "token.create": 1,
      "secret.set": 2,
      "secret.rm": 1,
      "run.cancel": 1,
      "token.revoke": 1,
      "user.remove": 1,
    });
    const text = JSON.stringify(all);
    for (const secret of [
      ann.password,
      newPassword,
      wrongPassword,
      tokenSecret,
      annSession,
      annSession2,
      adminToken,
      secretValue,
    ]) {
      expect(text).not.toContain(secret);
    }
  });

  it("counts refused logins of one client in one entry per minute and reason, rate-limited ones too", async () => {
    await addUser("eve", "member", "acme", "eve-password-1234");
    const answers: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      answers.push(
        (
          await call("POST", "/api/auth/login", {
            body: { username: "eve", password: `wrong-${i}-password` },
          })
        ).status,
      );
    }
    expect(answers).toEqual([401, 401, 401, 401, 401, 429]);
    // Read through the API, which writes this replica's latest counts first.
    const listed = await call("GET", "/api/audit?action=login", { token: adminToken });
    const logins = listed.body.events as AuditEvent[];
    expect(logins).toHaveLength(2);
    expect(logins.every((e) => e.outcome === "denied" && e.actor.username === "eve")).toBe(true);
    const byReason = Object.fromEntries(logins.map((e) => [e.details.reason, e.details]));
    expect(byReason.wrong_credentials).toMatchObject({ count: 5, usernames: ["eve"] });
    expect(byReason.rate_limited).toMatchObject({ count: 1, usernames: ["eve"] });
    expect(JSON.stringify(logins)).not.toMatch(/wrong-\d-password/);
  });

  it("admins only: a member is refused, a tenant's admin sees their tenant's entries only", async () => {
    await addUser("amy", "member", "acme", "amy-password-1234");
    await addUser("bob", "member", "globex", "bob-password-1234");
    await addUser("acme-admin", "admin", "acme", "acme-admin-password-1");
    const amy = await session("amy", "amy-password-1234");
    await session("bob", "bob-password-1234");

    const member = await call("GET", "/api/audit", { token: amy });
    expect(member.status).toBe(403);
    expect(member.body.error.code).toBe("FORBIDDEN");
    expect((await call("GET", "/api/audit")).status).toBe(401);

    const tenantAdmin = await session("acme-admin", "acme-admin-password-1");
    const seen = await call("GET", "/api/audit", { token: tenantAdmin });
    expect(seen.status, JSON.stringify(seen.body)).toBe(200);
    expect(seen.body.events.length).toBeGreaterThan(0);
    expect(new Set(seen.body.events.map((e: Json) => e.tenant_id))).toEqual(new Set(["acme"]));
    expect(JSON.stringify(seen.body)).not.toContain("bob");
    expect((await call("GET", "/api/audit?tenant=globex", { token: tenantAdmin })).status).toBe(403);

    const platform = await call("GET", "/api/audit?action=login", { token: adminToken });
    expect(platform.status).toBe(200);
    expect(platform.body.events.map((e: Json) => e.actor.username).sort()).toEqual([
      "acme-admin",
      "amy",
      "bob",
    ]);
    const globex = await call("GET", "/api/audit?tenant=globex", { token: adminToken });
    expect(globex.body.events.map((e: Json) => e.action).sort()).toEqual(["login", "user.add"]);

    const page = await call("GET", "/api/audit?limit=2", { token: adminToken });
    expect(page.body.events).toHaveLength(2);
    const next = await call("GET", `/api/audit?limit=2&before=${page.body.next}`, { token: adminToken });
    expect(next.body.events[0].id).not.toBe(page.body.events[0].id);
  });
});

/** The built CLI against the in-process server, with no credentials from the environment. */
function runyard(args: string[], token: string): Promise<CliResult> {
  return runCli(args, {
    env: { ADOS_TOKEN: "", ADOS_API_URL: "", RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: token },
  });
}

describe("runyard audit", () => {
  it("lists entries through the API, filtered, as a table or JSON; a member is refused", async () => {
    await addUser("cat", "member", "acme", "cat-password-1234");
    await session("cat", "cat-password-1234");
    await call("POST", "/api/auth/login", { body: { username: "cat", password: "wrong-password-1" } });

    const json = await runyard(["audit", "--json", "--action", "login", "--limit", "1"], adminToken);
    expect(json.code, json.stderr).toBe(0);
    const events = JSON.parse(json.stdout) as AuditEvent[];
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: "login", outcome: "denied", actor: { username: "cat" } });

    const human = await runyard(["audit"], adminToken);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^AT\s+ACTION\s+OUTCOME\s+ACTOR/);
    expect(human.stdout).toMatch(/login\s+denied\s+cat/);
    expect(human.stdout).toMatch(/user\.add\s+ok/);

    const member = await server.store.tokens.create({ kind: "user", name: "m", tenant_id: "acme" });
    const refused = await runyard(["audit"], member.secret);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("only an admin may do this");
  });
});

describe("changes made straight in the home's database (runyard user/token --home)", () => {
  it("are recorded too, with the actor local and no password or token secret", async () => {
    await server.close();
    const home = tempDir("runyard-audit-home-");
    server = await startServer({
      host: "127.0.0.1",
      port: 0,
      home,
      adminToken,
      timings: { heartbeatMs: 1000, leaseMs: 5000 },
      reconnectGraceMs: 1000,
      logger: silentLogger,
      version: "0.0.0-test",
      warn: () => {},
    });
    const added = await runyard(
      ["user", "add", "dee", "--role", "member", "--tenant", "acme", "--home", home],
      "",
    );
    expect(added.code, added.stderr).toBe(0);
    const password = /\S{12,}/.exec(added.stdout)?.[0] ?? "";
    expect(password).not.toBe("");
    const token = await runyard(["token", "create", "--runner", "--group", "g", "--home", home], "");
    expect(token.code, token.stderr).toBe(0);
    const tokenSecret = token.stdout.trim();
    const tokenId = (await server.store.tokens.find(tokenSecret))?.id ?? "";
    const revoked = await runyard(["token", "revoke", tokenId, "--home", home], "");
    expect(revoked.code, revoked.stderr).toBe(0);
    const removed = await runyard(["user", "remove", "dee", "--home", home], "");
    expect(removed.code, removed.stderr).toBe(0);

    const seen = await call("GET", "/api/audit", { token: adminToken });
    expect(seen.status).toBe(200);
    const local = { kind: "local", user_id: null, token_id: null, username: null };
    expect(seen.body.events.map((e: Json) => [e.action, e.target, e.actor, e.details.via])).toEqual([
      ["user.remove", "dee", local, "home"],
      ["token.revoke", tokenId, local, "home"],
      ["token.create", tokenId, local, "home"],
      ["user.add", "dee", local, "home"],
    ]);
    const text = JSON.stringify(seen.body);
    expect(text).not.toContain(password);
    expect(text).not.toContain(tokenSecret);
  });
});
