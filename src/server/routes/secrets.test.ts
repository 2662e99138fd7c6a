import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, makeToken, startInProcessServer } from "../../../test/helpers/in-process.js";
import type { RunningServer } from "../server.js";

interface ErrorReply {
  error: { code: string; message: string; hint: string };
}

let server: RunningServer;
let acme: string;
let globex: string;
let outsider: string;
let runner: string;
/** Every value any test stores: no response body of this file may hold one. */
const values: string[] = [];
const bodies: string[] = [];

function value(label: string): string {
  const made = `${label}-${Math.random().toString(36).slice(2)}-value`;
  values.push(made);
  return made;
}

beforeAll(async () => {
  server = await startInProcessServer();
  acme = await makeToken(server, "user", { tenant_id: "acme" });
  globex = await makeToken(server, "user", { tenant_id: "globex" });
  outsider = await makeToken(server, "user");
  runner = await makeToken(server, "runner");
});

afterAll(async () => {
  await server.close();
});

async function call(options: InjectOptions & { token?: string | null }): Promise<LightMyRequestResponse> {
  const { token = adminToken, ...rest } = options;
  const response = await server.app.inject({
    ...rest,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...rest.headers },
  });
  bodies.push(response.body);
  return response;
}

const put = (name: string, payload: unknown, token: string | null = adminToken, query = "") =>
  call({ method: "PUT", url: `/api/secrets/${name}${query}`, payload: payload as object, token });
const list = (token: string | null = adminToken, query = "") =>
  call({ method: "GET", url: `/api/secrets${query}`, token });
const remove = (name: string, token: string | null = adminToken, query = "") =>
  call({ method: "DELETE", url: `/api/secrets/${name}${query}`, token });
const names = async (token: string, query = ""): Promise<string[]> =>
  (await list(token, query)).json<{ secrets: { name: string }[] }>().secrets.map((s) => s.name);

const queuedFlow = (extra = "", step = "") =>
  `name: uses-secrets\n${extra}steps:\n  - name: s\n${step}    command: echo "$DEPLOY_KEY"\n`;

describe("PUT, GET and DELETE /api/secrets", () => {
  it("creates (201), replaces (200), lists names with times, and removes (200, then 404)", async () => {
    const created = await put("DEPLOY_KEY", { value: value("first") }, acme);
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toEqual({
      name: "DEPLOY_KEY",
      tenant_id: "acme",
      created_at: expect.any(String),
      updated_at: expect.any(String),
      updated_by: expect.stringMatching(/^tok_/),
    });
    const replaced = await put("DEPLOY_KEY", { value: value("second") }, acme);
    expect(replaced.statusCode).toBe(200);
    const listed = await list(acme);
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual({ secrets: [replaced.json()] });
    expect(await server.store.secrets.values("acme", ["DEPLOY_KEY"])).toEqual({ DEPLOY_KEY: values.at(-1) });

    const removed = await remove("DEPLOY_KEY", acme);
    expect(removed.statusCode).toBe(200);
    expect(removed.json()).toEqual({ name: "DEPLOY_KEY", tenant_id: "acme", removed: true });
    const again = await remove("DEPLOY_KEY", acme);
    expect(again.statusCode).toBe(404);
    expect(again.json<ErrorReply>().error).toMatchObject({
      code: "NOT_FOUND",
      hint: expect.stringContaining("secret list"),
    });
  });

  it("rejects unknown fields by name and a missing or non-text value", async () => {
    const extra = await put("API_TOKEN", { value: value("extra"), scope: "all" }, acme);
    expect(extra.statusCode).toBe(400);
    expect(extra.json<ErrorReply>().error.message).toContain("scope");
    expect((await put("API_TOKEN", {}, acme)).statusCode).toBe(400);
    expect((await put("API_TOKEN", { value: 12345 }, acme)).statusCode).toBe(400);
    expect(await names(acme)).not.toContain("API_TOKEN");
  });

  it("takes only environment-variable names, and says what would do", async () => {
    for (const bad of ["deploy-key", "1KEY", "DEPLOY%20KEY", "deploy_key"]) {
      const response = await put(bad, { value: value("badname") }, acme);
      expect(response.statusCode, bad).toBe(400);
      expect(response.json<ErrorReply>().error.hint).toContain("upper-case letters, digits and _");
    }
    expect((await put("deploy_key", { value: value("x") }, acme)).json<ErrorReply>().error.hint).toContain(
      "DEPLOY_KEY",
    );
    expect((await remove("deploy-key", acme)).statusCode).toBe(400);
  });

  it("refuses values over 64 KiB, shorter than 4 characters or holding NUL, never quoting them", async () => {
    const big = value("big").padEnd(64 * 1024 + 1, "x");
    values.push(big);
    const tooBig = await put("BIG_KEY", { value: big }, acme);
    expect(tooBig.statusCode).toBe(400);
    expect(tooBig.json<ErrorReply>().error.message).toBe(
      "the value is 65537 bytes; a secret holds at most 65536",
    );
    expect((await put("BIG_KEY", { value: big.slice(0, 64 * 1024) }, acme)).statusCode).toBe(201);
    const short = await put("SHORT_KEY", { value: "abc" }, acme);
    expect(short.statusCode).toBe(400);
    expect(short.json<ErrorReply>().error.hint).toContain("cannot be masked");
    const nul = await put("NUL_KEY", { value: `${value("nul")}\u0000tail` }, acme);
    expect(nul.statusCode).toBe(400);
    expect(await names(acme)).toEqual(["BIG_KEY"]);
    await remove("BIG_KEY", acme);
  });

  it("keeps tenants apart: another tenant's secret is invisible, and deleting it is 404", async () => {
    await put("SHARED_NAME", { value: value("acme") }, acme);
    expect(await names(globex)).toEqual([]);
    expect((await remove("SHARED_NAME", globex)).statusCode).toBe(404);
    expect(await names(outsider)).toEqual([]);
    expect(await names(adminToken)).toEqual([]);
    // Same name, another tenant: a secret of its own.
    expect((await put("SHARED_NAME", { value: value("globex") }, globex)).statusCode).toBe(201);
    expect(await server.store.secrets.values("acme", ["SHARED_NAME"])).toEqual({
      SHARED_NAME: values.at(-2),
    });
    await remove("SHARED_NAME", acme);
    await remove("SHARED_NAME", globex);
  });

  it("lets an admin act on a tenant's secrets with ?tenant=, and no one else", async () => {
    expect((await put("ADMIN_SET", { value: value("admin") }, adminToken, "?tenant=acme")).statusCode).toBe(
      201,
    );
    expect(await names(acme)).toEqual(["ADMIN_SET"]);
    expect(await names(adminToken, "?tenant=acme")).toEqual(["ADMIN_SET"]);
    expect(await names(adminToken)).toEqual([]);
    const asked = await list(globex, "?tenant=acme");
    expect(asked.statusCode).toBe(403);
    expect(asked.json<ErrorReply>().error.message).toContain("only an admin token may name a tenant");
    expect((await put("ADMIN_SET", { value: value("x") }, globex, "?tenant=acme")).statusCode).toBe(403);
    expect((await remove("ADMIN_SET", outsider, "?tenant=acme")).statusCode).toBe(403);
    expect((await list(acme, "?tenant=acme")).statusCode).toBe(200);
    expect((await remove("ADMIN_SET", adminToken, "?tenant=acme")).statusCode).toBe(200);
  });

  it("shares the secrets outside any tenant between admin tokens and user tokens outside any tenant", async () => {
    expect((await put("OUTSIDE_KEY", { value: value("outside") }, outsider)).statusCode).toBe(201);
    expect(await names(adminToken)).toEqual(["OUTSIDE_KEY"]);
    expect(await names(acme)).toEqual([]);
    expect((await remove("OUTSIDE_KEY", acme)).statusCode).toBe(404);
    expect((await remove("OUTSIDE_KEY", adminToken)).statusCode).toBe(200);
  });

  it("needs a user or admin token", async () => {
    expect((await list(null)).statusCode).toBe(401);
    expect((await put("ANY_KEY", { value: value("anon") }, null)).statusCode).toBe(401);
    expect((await list(runner)).statusCode).toBe(403);
    expect((await put("ANY_KEY", { value: value("runner") }, runner)).statusCode).toBe(403);
  });
});

describe("stored secrets and run submission", () => {
  const submit = (workflow: string, token: string, vars: Record<string, string> = {}) =>
    call({ method: "POST", url: "/api/runs", payload: { workflow, vars }, token });

  it("refuses a run naming a secret its tenant has not stored, naming it and how to set it", async () => {
    const response = await submit(queuedFlow("secrets: [DEPLOY_KEY, OTHER]\n"), acme);
    expect(response.statusCode).toBe(400);
    expect(response.json<ErrorReply>().error).toEqual({
      code: "SECRET_MISSING",
      message: "secrets: DEPLOY_KEY, OTHER are not stored for tenant acme, nor given as variables",
      hint: expect.stringContaining("runyard secret set DEPLOY_KEY"),
    });
    expect((await server.store.runs.list({ tenantId: "acme" })).runs).toEqual([]);
  });

  it("queues it once stored, without copying the value into the run's spec or vars", async () => {
    const secret = value("deploy");
    await put("DEPLOY_KEY", { value: secret }, acme);
    const response = await submit(queuedFlow("secrets: [DEPLOY_KEY]\n"), acme);
    expect(response.statusCode, response.body).toBe(201);
    const run = await server.store.runs.get(response.json<{ run_id: string }>().run_id);
    expect(JSON.stringify(run)).not.toContain(secret);
    // Another tenant listing the same name has nothing stored under it.
    const other = await submit(queuedFlow("secrets: [DEPLOY_KEY]\n"), globex);
    expect(other.json<ErrorReply>().error.code).toBe("SECRET_MISSING");
    await remove("DEPLOY_KEY", acme);
  });

  it("needs no stored secret for a listed name given as a variable, in env: or a step's expect_vars", async () => {
    expect(
      (await submit(queuedFlow("secrets: [DEPLOY_KEY]\n"), acme, { DEPLOY_KEY: value("var") })).statusCode,
    ).toBe(201);
    expect(
      (await submit(queuedFlow("secrets: [DEPLOY_KEY]\nvars: {DEPLOY_KEY: from-vars}\n"), acme)).statusCode,
    ).toBe(201);
    expect(
      (await submit(queuedFlow("secrets: [DEPLOY_KEY]\nenv: {DEPLOY_KEY: from-env}\n"), acme)).statusCode,
    ).toBe(201);
    expect(
      (await submit(queuedFlow("secrets: [DEPLOY_KEY]\n", "    expect_vars: [DEPLOY_KEY]\n"), acme))
        .statusCode,
    ).toBe(201);
  });
});

describe("every answer of this file", () => {
  it("holds no stored value", () => {
    expect(bodies.length).toBeGreaterThan(30);
    for (const body of bodies) for (const stored of values) expect(body).not.toContain(stored);
  });
});
