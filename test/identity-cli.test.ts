import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type CliResult, runCli, tempDir } from "./helpers/cli.js";
import {
  api,
  freePort,
  type Proc,
  startCli,
  startRunner,
  startTestServer,
  type TestServer,
} from "./helpers/server.js";

/** No credentials from the environment the tests run in. */
const noAuth = { RUNYARD_TOKEN: "", ADOS_TOKEN: "", RUNYARD_SERVER_URL: "", ADOS_API_URL: "" };

/** The built CLI with `input` on its stdin, as `echo pw | runyard user add ...` runs it. */
function runyard(args: string[], env: Record<string, string>, input?: string): Promise<CliResult> {
  return runCli(args, { env: { ...noAuth, ...env }, input: input ?? "" });
}

async function login(url: string, username: string, password: string) {
  return api<{ token: string; expires_at: string }>(
    url,
    "POST",
    "/api/auth/login",
    { username, password },
    "",
  );
}

const started: Proc[] = [];
afterEach(async () => {
  for (const proc of started.splice(0)) await proc.kill();
});

describe("runyard user (through the API with an admin token)", () => {
  let server: TestServer;
  /** The server the first and third tests share, each with users of its own names. */
  let shared: Promise<TestServer> | undefined;
  const userServer = (): Promise<TestServer> => {
    shared ??= startTestServer();
    return shared;
  };
  afterAll(async () => {
    await (await shared)?.proc.kill();
  });

  it("adds, lists, re-passwords and removes users; each change is what login then sees", async () => {
    const server = await userServer();
    const admin = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: "ryt_test_admin_token_0123456789" };

    const added = await runyard(["user", "add", "ana", "--tenant", "acme", "--role", "member"], admin);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stderr).toContain("user ana added as member in tenant acme");
    const password = added.stdout.trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const first = await login(server.url, "ana", password);
    expect(first.status).toBe(200);

    const chosen = await runyard(
      ["user", "add", "root", "--role", "admin", "--password-stdin"],
      admin,
      "correct horse battery\n",
    );
    expect(chosen.code, chosen.stderr).toBe(0);
    expect(chosen.stdout).toBe("");
    expect((await login(server.url, "root", "correct horse battery")).status).toBe(200);

    const listed = await runyard(["user", "list"], admin);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/ana\s+member\s+acme/);
    expect(listed.stdout).toMatch(/root\s+admin\s+-/);
    expect(listed.stdout).not.toContain("argon2");

    const passwd = await runyard(
      ["user", "passwd", "ana", "--password-stdin"],
      admin,
      "a new long password\n",
    );
    expect(passwd.code, passwd.stderr).toBe(0);
    expect((await api(server.url, "GET", "/api/runs", undefined, first.body.token)).status).toBe(401);
    expect((await login(server.url, "ana", password)).status).toBe(401);
    expect((await login(server.url, "ana", "a new long password")).status).toBe(200);

    const removed = await runyard(["user", "remove", "ana"], admin);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await login(server.url, "ana", "a new long password")).status).toBe(401);
    const again = await runyard(["user", "remove", "ana"], admin);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("user ana does not exist");
  });

  it("adds a user straight into the database of --home, and the running server logs them in", async () => {
    server = await startTestServer();
    started.push(server.proc);
    // A run first: the database then holds sealed data, which --home opens with the server's key.
    const submitted = await api(server.url, "POST", "/api/runs", {
      workflow: "name: queued\nsteps:\n  - name: a\n    action: cmd.run\n    args:\n      cmd: echo a\n",
    });
    expect(submitted.status).toBe(201);
    const result = await runyard(
      ["user", "add", "admin", "--role", "admin", "--password-stdin", "--home", server.home],
      {},
      "admin\n",
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("shorter than 12 characters");
    // Seed 004's curl, as written, against the user the operator created.
    const response = await fetch(new URL("/api/auth/login", server.url), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: '{"username": "admin", "password": "admin"}',
    });
    expect(response.status).toBe(200);
    const { token } = (await response.json()) as { token: string };
    expect((await api(server.url, "GET", "/api/users", undefined, token)).body).toEqual([
      expect.objectContaining({ username: "admin", role: "admin", tenant_id: null }),
    ]);
  });

  it("makes personal tokens for the logged-in user; a member lists and revokes only their own", async () => {
    const server = await userServer();
    const admin = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: "ryt_test_admin_token_0123456789" };
    for (const name of ["cy", "bo"]) {
      await runyard(
        ["user", "add", name, "--tenant", "acme", "--role", "member", "--password-stdin"],
        admin,
        `${name}-secret-pw\n`,
      );
    }
    const cy = {
      RUNYARD_SERVER_URL: server.url,
      RUNYARD_TOKEN: (await login(server.url, "cy", "cy-secret-pw")).body.token,
    };
    const bo = {
      RUNYARD_SERVER_URL: server.url,
      RUNYARD_TOKEN: (await login(server.url, "bo", "bo-secret-pw")).body.token,
    };

    const created = await runyard(["token", "create", "--user", "--name", "cy laptop"], cy);
    expect(created.code, created.stderr).toBe(0);
    const personal = created.stdout.trim();
    await runyard(["token", "create", "--user", "--name", "bo laptop"], bo);

    const listed = await runyard(["token", "list", "--json"], cy);
    expect(listed.code, listed.stderr).toBe(0);
    const tokens = JSON.parse(listed.stdout) as Array<{ id: string; name: string; user_id: string }>;
    expect(tokens.map((t) => t.name)).toEqual(["cy laptop"]);

    const bosId = (
      JSON.parse((await runyard(["token", "list", "--json"], bo)).stdout) as Array<{ id: string }>
    )[0]?.id;
    const foreign = await runyard(["token", "revoke", bosId ?? "?"], cy);
    expect(foreign.code).toBe(2);
    expect(foreign.stderr).toContain("does not exist");

    const everyone = await runyard(["token", "list"], admin);
    expect(everyone.stdout).toContain("cy laptop");
    expect(everyone.stdout).toContain("bo laptop");

    const own = await runyard(["token", "revoke", tokens[0]?.id ?? "?"], cy);
    expect(own.code, own.stderr).toBe(0);
    expect((await api(server.url, "GET", "/api/runs", undefined, personal)).status).toBe(401);
  });
});

describe("runyard up", () => {
  it("prints one admin token and creates no user: nobody logs in until the operator adds one", async () => {
    const home = tempDir();
    const port = await freePort();
    const up = startCli(["up", "--port", String(port), "--home", home], { ...noAuth });
    started.push(up);
    const printed = await up.waitFor(/export RUNYARD_TOKEN=\S+/);
    const token = printed.replace("export RUNYARD_TOKEN=", "");
    await up.waitFor(/listening on http:\/\/\S+/);
    const url = `http://127.0.0.1:${port}`;
    expect((await api(url, "GET", "/api/users", undefined, token)).body).toEqual([]);
    for (const [username, password] of [
      ["admin", "admin"],
      ["user", "user"],
    ] as const) {
      expect((await login(url, username, password)).status).toBe(401);
    }
  });
});

describe("runner tokens of a tenant", () => {
  it("refuse a runner that says another tenant (RUNYARD_TENANT_ID / ADOS_TENANT_ID), with a clear error", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    const { body } = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "acme runner",
      tenant_id: "acme",
    });
    for (const name of ["RUNYARD_TENANT_ID", "ADOS_TENANT_ID"]) {
      const refused = startCli(
        ["runner", "--server", server.url, "--token", body.token, "--id", `r-${name}`],
        {
          ...noAuth,
          RUNYARD_LOG_LEVEL: "error",
          [name]: "beta",
        },
      );
      started.push(refused);
      await refused.waitFor('says tenant "beta"');
      expect(refused.output()).toContain('its token belongs to tenant "acme"');
      expect(await refused.exited).not.toBe(0);
    }
    const runners = await api<Array<{ id: string }>>(server.url, "GET", "/api/runners");
    expect(runners.body).toEqual([]);
    // The same token with the agreeing tenant (or none) joins, as the tenant's runner.
    const agreeing = await startRunner(server.url, body.token, {
      id: "r-ok",
      env: { RUNYARD_TENANT_ID: "acme" },
    });
    started.push(agreeing);
    const joined = await api<Array<{ id: string; tenant_id: string }>>(server.url, "GET", "/api/runners");
    expect(joined.body).toEqual([expect.objectContaining({ id: "r-ok", tenant_id: "acme" })]);
  });
});
