import { decodeJwt, SignJWT, UnsecuredJWT } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashPassword, passwordMatches } from "../src/server/identity/passwords.js";
import type { RunningServer } from "../src/server/server.js";
import { adminToken, startInProcessServer } from "./helpers/in-process.js";

/*
 * Users, sessions, stream tokens and tokens, attacked through the API of a whole server in this
 * process (real SQLite in memory, no mocks): as an outsider, as a member, as another tenant.
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

interface Answer<T = Json> {
  status: number;
  body: T;
  headers: Record<string, unknown>;
}

async function call<T = Json>(
  method: "GET" | "POST" | "DELETE",
  url: string,
  options: { token?: string; body?: unknown; raw?: string; address?: string } = {},
): Promise<Answer<T>> {
  const response = await server.app.inject({
    method,
    url,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body !== undefined || options.raw !== undefined
        ? { "content-type": "application/json" }
        : {}),
    },
    ...(options.raw !== undefined ? { payload: options.raw } : {}),
    ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
    ...(options.address ? { remoteAddress: options.address } : {}),
  });
  return {
    status: response.statusCode,
    body: String(response.headers["content-type"]).startsWith("application/json")
      ? (JSON.parse(response.body) as T)
      : (response.body as T),
    headers: response.headers,
  };
}

async function addUser(
  username: string,
  role: "admin" | "member",
  tenant?: string,
  password = `${username}-password-123`,
): Promise<{ id: string; password: string }> {
  const answer = await call("POST", "/api/users", {
    token: adminToken,
    body: { username, role, password, ...(tenant ? { tenant_id: tenant } : {}) },
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return { id: answer.body.user.id, password };
}

async function login(username: string, password: string, address?: string): Promise<Answer> {
  return call("POST", "/api/auth/login", { body: { username, password }, ...(address ? { address } : {}) });
}

async function session(username: string, password: string): Promise<string> {
  const answer = await login(username, password);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.token as string;
}

const workflow = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

async function submitAs(token: string): Promise<string> {
  const answer = await call("POST", "/api/runs", { token, body: { workflow } });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.run_id as string;
}

async function sessionKey(): Promise<Uint8Array> {
  return Buffer.from(await server.store.serverKeys.get("session-hs256"), "base64url");
}

describe("login (the OpenRunner-style API)", () => {
  it("answers a session token to the OpenRunner-style API's curl body, for a user the operator created", async () => {
    await addUser("admin", "admin", undefined, "admin");
    const answer = await call("POST", "/api/auth/login", {
      raw: '{"username": "admin", "password": "admin"}',
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ token: expect.any(String), expires_at: expect.any(String) });
    const hours = (Date.parse(answer.body.expires_at) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(11.9);
    expect(hours).toBeLessThanOrEqual(12);
    expect((await call("GET", "/api/runs", { token: answer.body.token })).status).toBe(200);
  });

  it("knows no user until the operator adds one: admin/admin and user/user are refused", async () => {
    expect((await call("GET", "/api/users", { token: adminToken })).body).toEqual([]);
    for (const name of ["admin", "user"]) {
      const answer = await login(name, name);
      expect(answer.status).toBe(401);
    }
  });

  it("answers an unknown user and a wrong password with the same words, in about the same time", async () => {
    await addUser("ana", "member", "acme");
    const unknown = await login("nobody", "whatever-password");
    const wrong = await login("ana", "whatever-password");
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(401);
    expect(unknown.body).toEqual(wrong.body);
    // The unknown name is checked against a dummy argon2 hash: as costly as a real check. Counted
    // in this process's CPU time (the server runs in it, argon2 on its threads), which a busy
    // machine does not stretch as it stretches the clock: a refusal that skipped the hash would
    // cost well under a millisecond of it, one that hashed what a real check costs.
    const cpuMs = async (work: () => Promise<unknown>): Promise<number> => {
      const before = process.cpuUsage();
      await work();
      const spent = process.cpuUsage(before);
      return (spent.user + spent.system) / 1000;
    };
    const refusal = (name: string) =>
      cpuMs(async () => {
        const answer = await login(name, "whatever-password", `10.0.0.${name.length}`);
        // A checked password, not the rate limit's quick 429 (5 failures a user a minute).
        expect(answer.status).toBe(401);
      });
    // One argon2id check against a real hash of the server's cost, measured the same way: what a
    // refusal must cost (not the unknown name's own path, which it is to check).
    const real = await hashPassword("not-the-password");
    const check = () =>
      cpuMs(async () => expect(await passwordMatches(real, "whatever-password")).toBe(false));
    await check();
    // The least of four each, taken in turns.
    const unknownTimes: number[] = [];
    const wrongTimes: number[] = [];
    const checkTimes: number[] = [];
    for (let round = 0; round < 4; round++) {
      unknownTimes.push(await refusal("nobody"));
      wrongTimes.push(await refusal("ana"));
      checkTimes.push(await check());
    }
    const unknownMs = Math.min(...unknownTimes);
    const wrongMs = Math.min(...wrongTimes);
    const checkMs = Math.min(...checkTimes);
    expect(unknownMs).toBeGreaterThan(checkMs / 2);
    expect(wrongMs).toBeGreaterThan(checkMs / 2);
    // A check costs milliseconds on any machine (4.7 ms of CPU on a fast 2-core host, 15 on a slow
    // one); a skipped hash, well under one: the two above compare a real cost, not noise.
    expect(checkMs).toBeGreaterThan(2);
  });

  it("refuses unknown fields and empty values in the login body by name", async () => {
    const answer = await call("POST", "/api/auth/login", {
      body: { username: "a", password: "b", role: "admin" },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain("role");
  });
});

describe("login rate limit", () => {
  it("answers the 6th failure for one user within a minute with 429 and Retry-After, even with the right password", async () => {
    const ana = await addUser("ana", "member", "acme");
    for (let attempt = 1; attempt <= 5; attempt++) {
      expect((await login("ana", "wrong-password")).status).toBe(401);
    }
    const limited = await login("ana", "wrong-password");
    expect(limited.status).toBe(429);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(limited.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect(limited.body.error).toMatchObject({
      code: "RATE_LIMITED",
      message: expect.stringContaining("too many failed logins"),
      hint: expect.stringContaining("Retry-After"),
    });
    expect((await login("ana", ana.password)).status).toBe(429);
  });

  it("holds a burst of parallel guesses to the same 5", async () => {
    await addUser("ana", "member", "acme");
    const answers = await Promise.all(Array.from({ length: 10 }, () => login("ana", "wrong-password")));
    expect(answers.filter((a) => a.status === 401)).toHaveLength(5);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(5);
  });

  it("after 22 wrong logins for one user from 127.0.0.1, another user logs in from there and that user from another address", async () => {
    const ana = await addUser("ana", "member", "acme");
    const bo = await addUser("bo", "member", "acme");
    const answers: number[] = [];
    for (let attempt = 1; attempt <= 22; attempt++)
      answers.push((await login("ana", "guess", "127.0.0.1")).status);
    expect(answers.filter((status) => status === 401)).toHaveLength(5);
    expect(answers.filter((status) => status === 429)).toHaveLength(17);
    expect((await login("bo", bo.password, "127.0.0.1")).status).toBe(200);
    expect((await login("ana", ana.password, "198.51.100.1")).status).toBe(200);
    // The pair that guessed stays locked, the right password included.
    expect((await login("ana", ana.password, "127.0.0.1")).status).toBe(429);
  });

  it("a client guessing many usernames from one address locks none of them for anyone else, nor the right password from there", async () => {
    const bo = await addUser("bo", "member", "beta");
    for (let attempt = 1; attempt <= 25; attempt++) {
      expect((await login(`guess${attempt}`, "x", "203.0.113.7")).status).toBe(401);
    }
    expect((await login("bo", bo.password, "203.0.113.7")).status).toBe(200);
    expect((await login("bo", bo.password, "198.51.100.1")).status).toBe(200);
  });
});

describe("session tokens (JWT)", () => {
  it("refuses alg none, another algorithm, a wrong key, a changed payload and an expired token, each saying why", async () => {
    const ana = await addUser("ana", "member", "acme");
    const root = await addUser("root", "admin");
    const good = await session("ana", ana.password);
    const claims = decodeJwt(good);
    const key = await sessionKey();
    const [header, , signature] = good.split(".");

    const none = new UnsecuredJWT(claims).encode();
    const hs512 = await new SignJWT(claims).setProtectedHeader({ alg: "HS512" }).sign(key);
    const wrongKey = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("not-the-server-key-0123456789abcdef"));
    const changedPayload = [
      header,
      Buffer.from(JSON.stringify({ ...claims, sub: root.id })).toString("base64url"),
      signature,
    ].join(".");
    const expired = await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) - 60 })
      .setProtectedHeader({ alg: "HS256" })
      .sign(key);

    const cases: Array<[string, string, RegExp]> = [
      ["alg none", none, /algorithm "none"/],
      ["HS512", hs512, /algorithm "HS512"/],
      ["wrong key", wrongKey, /signature does not match/],
      ["changed payload", changedPayload, /signature does not match/],
      ["expired", expired, /expired/],
    ];
    for (const [name, token, message] of cases) {
      const answer = await call("GET", "/api/runs", { token });
      expect(answer.status, name).toBe(401);
      expect(answer.body.error.code, name).toBe("UNAUTHORIZED");
      expect(answer.body.error.message, name).toMatch(message);
    }
    // The same claims signed with the server's key are accepted: the refusals above are the tampering.
    const resigned = await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(key);
    expect((await call("GET", "/api/runs", { token: resigned })).status).toBe(200);
  });

  it("logout ends that session at once; another session of the same user goes on", async () => {
    const ana = await addUser("ana", "member", "acme");
    const first = await session("ana", ana.password);
    const second = await session("ana", ana.password);
    expect((await call("POST", "/api/auth/logout", { token: first })).status).toBe(200);
    const after = await call("GET", "/api/runs", { token: first });
    expect(after.status).toBe(401);
    expect(after.body.error.message).toContain("logged out");
    expect((await call("GET", "/api/runs", { token: second })).status).toBe(200);
  });

  it("a new password ends every session of the user; the new password logs in, the old one not", async () => {
    const ana = await addUser("ana", "member", "acme");
    const before = await session("ana", ana.password);
    const changed = await call("POST", "/api/users/ana/password", { token: adminToken, body: {} });
    expect(changed.status).toBe(200);
    const fresh = changed.body.password as string;
    expect(fresh.length).toBeGreaterThanOrEqual(20);
    const refused = await call("GET", "/api/runs", { token: before });
    expect(refused.status).toBe(401);
    expect(refused.body.error.message).toContain("password change");
    expect((await login("ana", ana.password)).status).toBe(401);
    expect((await call("GET", "/api/runs", { token: await session("ana", fresh) })).status).toBe(200);
  });

  it("removing a user ends their sessions and their personal tokens", async () => {
    const ana = await addUser("ana", "member", "acme");
    const live = await session("ana", ana.password);
    const personal = await call("POST", "/api/tokens", {
      token: live,
      body: { kind: "user", name: "laptop" },
    });
    expect(personal.status).toBe(201);
    expect((await call("DELETE", "/api/users/ana", { token: adminToken })).status).toBe(200);
    expect((await call("GET", "/api/runs", { token: live })).status).toBe(401);
    expect((await call("GET", "/api/runs", { token: personal.body.token })).status).toBe(401);
    expect((await login("ana", ana.password)).status).toBe(401);
  });
});

describe("stream tokens", () => {
  it("open only GET events of their own run, by ?access_token= or Bearer", async () => {
    const ana = await addUser("ana", "member", "acme");
    const token = await session("ana", ana.password);
    const mine = await submitAs(token);
    const other = await submitAs(token);
    const issued = await call("POST", `/api/runs/${mine}/stream-token`, { token });
    expect(issued.status).toBe(201);
    const stream = issued.body.token as string;
    expect(Date.parse(issued.body.expires_at) - Date.now()).toBeLessThanOrEqual(5 * 60_000);
    expect(issued.body.url).toBe(`/api/runs/${mine}/events?access_token=${stream}`);

    const events = await server.app.inject({ method: "GET", url: `${issued.body.url}&follow=0` });
    expect(events.statusCode).toBe(200);
    expect(events.body).toContain("run.queued");
    expect((await call("GET", `/api/runs/${mine}/events?follow=0`, { token: stream })).status).toBe(200);

    const refused: Array<[string, Promise<Answer>]> = [
      ["another run's events", call("GET", `/api/runs/${other}/events?follow=0&access_token=${stream}`)],
      ["the run itself", call("GET", `/api/runs/${mine}`, { token: stream })],
      ["the run list", call("GET", "/api/runs", { token: stream })],
      ["cancel", call("POST", `/api/runs/${mine}/cancel`, { token: stream })],
      ["another stream token", call("POST", `/api/runs/${mine}/stream-token`, { token: stream })],
      ["tokens", call("GET", "/api/tokens", { token: stream })],
    ];
    for (const [what, pending] of refused) {
      const answer = await pending;
      expect(answer.status, what).toBe(401);
      expect(answer.body.error.message, what).toContain(`opens only GET /api/runs/${mine}/events`);
    }
  });

  it("stop working when the session that asked for them logs out", async () => {
    const ana = await addUser("ana", "member", "acme");
    const token = await session("ana", ana.password);
    const run = await submitAs(token);
    const stream = (await call("POST", `/api/runs/${run}/stream-token`, { token })).body.token as string;
    await call("POST", "/api/auth/logout", { token });
    const answer = await call("GET", `/api/runs/${run}/events?follow=0&access_token=${stream}`);
    expect(answer.status).toBe(401);
  });

  it("are refused for another tenant's run with 404, as if it did not exist", async () => {
    const ana = await addUser("ana", "member", "acme");
    const bo = await addUser("bo", "member", "beta");
    const acmeRun = await submitAs(await session("ana", ana.password));
    const boToken = await session("bo", bo.password);
    for (const [method, url] of [
      ["POST", `/api/runs/${acmeRun}/stream-token`],
      ["GET", `/api/runs/${acmeRun}`],
      ["POST", `/api/runs/${acmeRun}/cancel`],
      ["GET", `/api/runs/${acmeRun}/events?follow=0`],
    ] as const) {
      const answer = await call(method, url, { token: boToken });
      expect(answer.status, `${method} ${url}`).toBe(404);
    }
    expect((await call("GET", "/api/runs", { token: boToken })).body.runs).toEqual([]);
  });
});

describe("who may manage users and tokens", () => {
  it("a member cannot list, add, remove or re-password users", async () => {
    const ana = await addUser("ana", "member", "acme");
    await addUser("bo", "member", "acme");
    const token = await session("ana", ana.password);
    const attempts = [
      call("GET", "/api/users", { token }),
      call("POST", "/api/users", { token, body: { username: "eve", role: "admin" } }),
      call("DELETE", "/api/users/bo", { token }),
      call("POST", "/api/users/bo/password", { token, body: { password: "taken-over-1234" } }),
      call("POST", "/api/tokens", { token, body: { kind: "admin", name: "escalate" } }),
      call("POST", "/api/tokens", { token, body: { kind: "runner", name: "mine" } }),
    ];
    for (const answer of await Promise.all(attempts)) {
      expect(answer.status).toBe(403);
      expect(answer.body.error.code).toBe("FORBIDDEN");
    }
    expect((await login("bo", "bo-password-123")).status).toBe(200);
  });

  it("a member lists and revokes only their own tokens; another's answers 404", async () => {
    const ana = await addUser("ana", "member", "acme");
    const bo = await addUser("bo", "member", "acme");
    const anaToken = await session("ana", ana.password);
    const boToken = await session("bo", bo.password);
    const anas = await call("POST", "/api/tokens", {
      token: anaToken,
      body: { kind: "user", name: "ana laptop" },
    });
    const bos = await call("POST", "/api/tokens", {
      token: boToken,
      body: { kind: "user", name: "bo laptop" },
    });
    expect(anas.body).toMatchObject({ user_id: ana.id, tenant_id: "acme", kind: "user" });

    const listed = await call("GET", "/api/tokens", { token: anaToken });
    expect(listed.body.map((t: { name: string }) => t.name)).toEqual(["ana laptop"]);
    const viaPersonal = await call("GET", "/api/tokens", { token: anas.body.token });
    expect(viaPersonal.body.map((t: { name: string }) => t.name)).toEqual(["ana laptop"]);

    const revokeOthers = await call("DELETE", `/api/tokens/${bos.body.id}`, { token: anaToken });
    expect(revokeOthers.status).toBe(404);
    expect((await call("GET", "/api/runs", { token: bos.body.token })).status).toBe(200);
    const adminTokenId = (await call("GET", "/api/tokens", { token: adminToken })).body.find(
      (t: { kind: string }) => t.kind === "admin",
    ).id;
    expect((await call("DELETE", `/api/tokens/${adminTokenId}`, { token: anaToken })).status).toBe(404);

    expect((await call("DELETE", `/api/tokens/${anas.body.id}`, { token: anaToken })).status).toBe(200);
    expect((await call("GET", "/api/runs", { token: anas.body.token })).status).toBe(401);
  });

  it("an admin lists and revokes everyone's tokens", async () => {
    const ana = await addUser("ana", "member", "acme");
    const anaToken = await session("ana", ana.password);
    const anas = await call("POST", "/api/tokens", {
      token: anaToken,
      body: { kind: "user", name: "ana laptop" },
    });
    const root = await addUser("root", "admin");
    const rootSession = await session("root", root.password);
    const listed = await call("GET", "/api/tokens", { token: rootSession });
    expect(listed.body.map((t: { name: string }) => t.name)).toEqual(
      expect.arrayContaining(["ana laptop", "admin"]),
    );
    expect((await call("DELETE", `/api/tokens/${anas.body.id}`, { token: rootSession })).status).toBe(200);
    expect((await call("GET", "/api/runs", { token: anas.body.token })).status).toBe(401);
  });

  it("an admin of one tenant manages that tenant's users only; the others answer 404", async () => {
    const acmeAdmin = await addUser("acme-admin", "admin", "acme");
    await addUser("ana", "member", "acme");
    await addUser("bo", "member", "beta");
    const token = await session("acme-admin", acmeAdmin.password);
    const listed = await call("GET", "/api/users", { token });
    expect(listed.body.map((u: { username: string }) => u.username)).toEqual(["acme-admin", "ana"]);
    expect((await call("DELETE", "/api/users/bo", { token })).status).toBe(404);
    expect((await call("POST", "/api/users/bo/password", { token, body: {} })).status).toBe(404);
    const elsewhere = await call("POST", "/api/users", {
      token,
      body: { username: "eve", role: "member", tenant_id: "beta" },
    });
    expect(elsewhere.status).toBe(403);
    const platform = await call("POST", "/api/users", { token, body: { username: "eve", role: "admin" } });
    expect(platform.body.user).toMatchObject({ tenant_id: "acme" });
  });

  it("a member is always in a tenant", async () => {
    const answer = await call("POST", "/api/users", {
      token: adminToken,
      body: { username: "ana", role: "member" },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain("tenant");
  });
});

describe("tenant admins and outsiders", () => {
  it("a tenant's admin sees that tenant's runs and tokens only, and makes tokens of that tenant only", async () => {
    const acmeAdmin = await addUser("acme-admin", "admin", "acme");
    const ana = await addUser("ana", "member", "acme");
    const bo = await addUser("bo", "member", "beta");
    const anaToken = await session("ana", ana.password);
    const boToken = await session("bo", bo.password);
    const acmeRun = await submitAs(anaToken);
    const betaRun = await submitAs(boToken);
    const bos = await call("POST", "/api/tokens", {
      token: boToken,
      body: { kind: "user", name: "bo laptop" },
    });
    const token = await session("acme-admin", acmeAdmin.password);

    const runs = await call("GET", "/api/runs", { token });
    expect(runs.body.runs.map((r: { run_id: string }) => r.run_id)).toEqual([acmeRun]);
    expect((await call("GET", `/api/runs/${betaRun}`, { token })).status).toBe(404);
    expect((await call("POST", `/api/runs/${betaRun}/stream-token`, { token })).status).toBe(404);
    expect((await call("POST", `/api/runs/${acmeRun}/stream-token`, { token })).status).toBe(201);

    const tokens = await call("GET", "/api/tokens", { token });
    expect(tokens.body.map((t: { name: string }) => t.name)).not.toContain("bo laptop");
    expect((await call("DELETE", `/api/tokens/${bos.body.id}`, { token })).status).toBe(404);

    const runner = await call("POST", "/api/tokens", { token, body: { kind: "runner", name: "acme box" } });
    expect(runner.status).toBe(201);
    expect(runner.body.tenant_id).toBe("acme");
    const foreign = await call("POST", "/api/tokens", {
      token,
      body: { kind: "runner", name: "beta box", tenant_id: "beta" },
    });
    expect(foreign.status).toBe(403);
  });

  it("a platform admin's session sees every tenant's runs and may ask for any run's stream token", async () => {
    const root = await addUser("root", "admin");
    const bo = await addUser("bo", "member", "beta");
    const betaRun = await submitAs(await session("bo", bo.password));
    const token = await session("root", root.password);
    expect((await call("GET", `/api/runs/${betaRun}`, { token })).status).toBe(200);
    expect((await call("POST", `/api/runs/${betaRun}/stream-token`, { token })).status).toBe(201);
    const me = await call("GET", "/api/auth/whoami", { token });
    expect(me.body).toMatchObject({ kind: "admin", role: "admin", tenant_id: null, username: "root" });
  });

  it("every identity route but login answers 401 without a token", async () => {
    const run = await submitAs(adminToken);
    for (const [method, url] of [
      ["POST", "/api/auth/logout"],
      ["GET", "/api/auth/whoami"],
      ["GET", "/api/users"],
      ["POST", "/api/users"],
      ["DELETE", "/api/users/ana"],
      ["POST", "/api/users/ana/password"],
      ["GET", "/api/tokens"],
      ["POST", "/api/tokens"],
      ["DELETE", "/api/tokens/tok_x"],
      ["POST", `/api/runs/${run}/stream-token`],
    ] as const) {
      const answer = await call(method, url, method === "GET" || method === "DELETE" ? {} : { body: {} });
      expect(answer.status, `${method} ${url}`).toBe(401);
    }
  });

  it("logout leaves an API token valid and says so: those are revoked, not logged out", async () => {
    const answer = await call("POST", "/api/auth/logout", { token: adminToken });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ logged_out: false });
    expect(answer.body.hint).toContain("token revoke");
    expect((await call("GET", "/api/auth/whoami", { token: adminToken })).status).toBe(200);
  });
});
