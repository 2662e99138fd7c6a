import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { runnerSocketPath } from "../src/core/protocol.js";
import { runCli, tempDir } from "./helpers/cli.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startCli,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/*
 * Where a run may run (docs/runners.md "Where a job runs: tenants, groups and shared runners"),
 * tried as the tenant member who found the hole would: real `runyard` processes, real tokens,
 * a step's own shell reading /proc.
 */

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** A workflow of one shell step on one host (`{}`: any runner, or `{group: G, labels: [..]}`). */
const flow = (name: string, host: string, script: string, secrets = "") => `
version: v0.1
name: ${name}
${secrets}inventory:
  hosts:
    worker: ${host}
steps:
  - name: work
    targets: [worker]
    action: shell.run
    args:
      script: |
${script
  .split("\n")
  .map((line) => `        ${line}`)
  .join("\n")}
`;

async function submitAs(server: TestServer, bearer: string, workflow: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow },
    bearer,
  );
  expect(status, JSON.stringify(body)).toBe(201);
  return body.run_id;
}

async function outputOf(server: TestServer, runId: string): Promise<string> {
  return (await readEvents(server.url, runId)).map((e) => (e.type === "step.output" ? e.data : "")).join("");
}

async function runnerOf(server: TestServer, runId: string): Promise<string | undefined> {
  const started_ = (await readEvents(server.url, runId)).find((event) => event.type === "run.started");
  return started_?.type === "run.started" ? (started_.runner_id ?? undefined) : undefined;
}

/**
 * Every file under `dir`, as text, as someone on that machine would read them. What the runner
 * removes meanwhile (a run's folder at its end) is skipped: gone, it holds nothing to read.
 */
function filesUnder(dir: string): string {
  let text = "";
  for (const name of ifStill(() => readdirSync(dir)) ?? []) {
    const path = join(dir, name);
    const info = ifStill(() => statSync(path));
    if (info?.isDirectory()) text += filesUnder(path);
    else if (info?.isFile()) text += ifStill(() => readFileSync(path).toString("latin1")) ?? "";
  }
  return text;
}

/** `read()`, or undefined when what it reads was removed first (ENOENT). */
function ifStill<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** A user of tenant `tenant` with role `role`, logged in; returns the session token. */
async function userOf(server: TestServer, username: string, role: "admin" | "member", tenant: string) {
  const password = "placement-password-123";
  const made = await api(server.url, "POST", "/api/users", { username, role, password, tenant_id: tenant });
  expect(made.status, JSON.stringify(made.body)).toBeLessThan(300);
  const { body } = await api<{ token: string }>(server.url, "POST", "/api/auth/login", {
    username,
    password,
  });
  return body.token;
}

describe("a tenant's runner and the platform's runs", () => {
  it("never receives an admin's run outside every tenant, nor its stored secret; a platform runner takes it", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    // The tenant admin makes a runner token in its own tenant and starts a runner with it.
    const acmeAdmin = await userOf(server, "acme-admin", "admin", "acme");
    const acmeMember = await userOf(server, "acme-member", "member", "acme");
    const { body: acmeToken } = await api<{ token: string; tenant_id: string }>(
      server.url,
      "POST",
      "/api/tokens",
      { kind: "runner", name: "acme's own runner" },
      acmeAdmin,
    );
    expect(acmeToken.tenant_id).toBe("acme");
    const acmeHome = tempDir();
    const acmeRunner = await startRunner(server.url, acmeToken.token, {
      id: "acme-runner",
      group: "linux",
      capacity: 3,
      env: { RUNYARD_HOME: acmeHome },
    });
    started.push(acmeRunner);

    // The platform admin's runs, outside every tenant, with a secret stored outside every tenant.
    const secret = `platform-key-${randomBytes(9).toString("hex")}`;
    expect((await api(server.url, "PUT", "/api/secrets/DEPLOY_KEY", { value: secret })).status).toBeLessThan(
      300,
    );
    const deploy = `printf 'hash=%s\\n' "$(printf %s "$DEPLOY_KEY" | sha256sum | cut -d' ' -f1)"`;
    const withSecret = "secrets: [DEPLOY_KEY]\n";
    const grouped = await submitAs(
      server,
      adminToken,
      flow("platform-grouped", "{group: linux}", deploy, withSecret),
    );
    const anyHost = await submitAs(server, adminToken, flow("platform-any", "{}", deploy, withSecret));

    // A member of the tenant looks for it from a step on its runner, as the attacker did.
    const snoop = [
      "if cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q '^DEPLOY_KEY='; then",
      "  echo LEAKED; else echo clean; fi",
    ].join("\n");
    const member = await submitAs(server, acmeMember, flow("snoop", "{group: linux}", snoop));
    const snooped = await waitForRun(server.url, member, isFinal);
    expect(snooped.status).toBe("success");
    expect(await outputOf(server, member)).toContain("clean");

    // The runner had room for all three and was offered the older runs first: it took none.
    for (const runId of [grouped, anyHost]) {
      const { body } = await api<{ status: string }>(server.url, "GET", `/api/runs/${runId}`);
      expect(body.status, `run ${runId}`).toBe("queued");
    }
    expect(acmeRunner.output()).not.toContain(secret);
    expect(filesUnder(acmeHome)).not.toContain(secret);

    const platform = await startRunner(server.url, await runnerToken(server.url), {
      id: "platform-runner",
      group: "linux",
    });
    started.push(platform);
    for (const runId of [grouped, anyHost]) {
      expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
      expect(await runnerOf(server, runId)).toBe("platform-runner");
      expect(await outputOf(server, runId)).toContain(`hash=${sha256(secret)}`);
    }
    expect(acmeRunner.output()).not.toContain(secret);
    expect(filesUnder(acmeHome)).not.toContain(secret);
  });
});

describe("runyard up", () => {
  it("its local runner is shared (bubblewrap works here): a tenant member's run reaches it and succeeds", async () => {
    const port = await freePort();
    const up = startCli(["up", "--port", String(port), "--home", tempDir()], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    started.push(up);
    await up.waitFor("local runner connected");
    const url = `http://127.0.0.1:${port}`;
    const { body: member } = await api<{ token: string }>(url, "POST", "/api/tokens", {
      kind: "user",
      name: "acme member",
      tenant_id: "acme",
    });
    const { status, body } = await api<{ run_id: string }>(
      url,
      "POST",
      "/api/runs",
      { kind: "workflow", workflow: flow("acme-on-up", "{}", "echo acme ran here") },
      member.token,
    );
    expect(status).toBe(201);
    // The helper's 30 s, not 20: on a machine with two busy loops beside the suite the run was
    // still queued 20 s after a just-started `up` took it (run G).
    const done = await waitForRun(url, body.run_id, isFinal);
    expect(done.status).toBe("success");
    expect(up.output()).not.toContain("tenants' runs wait for their own runners");

    const listed = await runCli(["runners", "--server", url], { env: { RUNYARD_TOKEN: adminToken } });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/SHARED\s+ISOLATION/);
    expect(listed.stdout).toMatch(/-local-[0-9a-z]{6} .*\s-\s+yes\s+sandbox\s/);
  });
});

describe("runyard up without bubblewrap", () => {
  it("keeps its local runner's id when it restarts while a tenant member's runner says hello under it", async () => {
    const port = await freePort();
    const home = tempDir();
    const url = `http://127.0.0.1:${port}`;
    const first = startCli(["up", "--port", String(port), "--home", home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    started.push(first);
    await first.waitFor("local runner connected");
    // A member sees the local runner's id (a run's run.started names it); it is kept in the home.
    const localId = readFileSync(join(home, "local-runner-id"), "utf8").trim();
    const { body } = await api<{ token: string }>(url, "POST", "/api/tokens", {
      kind: "runner",
      name: "acme runner",
      tenant_id: "acme",
    });
    await first.kill("SIGTERM");
    const again = startCli(["up", "--port", String(port), "--home", home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    started.push(again);
    let ended = false;
    const outcome = Promise.race([
      again.waitFor("local runner connected").then(() => "connected"),
      again.exited.then((code) => `exited ${code}: ${again.output().slice(-400)}`),
    ]).finally(() => {
      ended = true;
    });
    // Says hello under that id over and over until `up` has its runner or has ended.
    let welcomed = 0;
    while (!ended) {
      if ((await helloAs(url, body.token, localId)) === "welcome") welcomed++;
    }
    expect(await outcome).toBe("connected");
    expect(welcomed).toBe(0);
  }, 60_000);

  it("says once that tenants' runs wait for their own runners, why, and how to fix it; its runner is not shared", async () => {
    const port = await freePort();
    // Node is started by its full path; up's PATH has no bwrap.
    const up = startCli(["up", "--port", String(port), "--home", tempDir()], {
      RUNYARD_ADMIN_TOKEN: adminToken,
      PATH: tempDir(),
    });
    started.push(up);
    await up.waitFor("local runner connected");
    expect(up.output()).toContain(
      "the local runner takes runs outside any tenant only; tenants' runs wait for their own runners, because bubblewrap (bwrap) is not installed (hint: install it (Debian/Ubuntu: apt-get install bubblewrap)",
    );
    const { body: runners } = await api<Array<{ id: string; shared: boolean; isolation: string }>>(
      `http://127.0.0.1:${port}`,
      "GET",
      "/api/runners",
    );
    expect(runners).toEqual([expect.objectContaining({ shared: false, isolation: "none" })]);
  });
});

describe("a queued run says why", () => {
  it("a runner outside every tenant that is not shared leaves a tenant's run queued, and `runs show` names tenant, group and labels", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    started.push(
      await startRunner(server.url, await runnerToken(server.url), {
        id: "platform-only",
        group: "linux",
        labels: "fast",
      }),
    );
    const { body: member } = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "acme member",
      tenant_id: "acme",
    });
    const acmeRun = await submitAs(
      server,
      member.token,
      flow("acme-waits", "{group: linux, labels: [fast]}", "echo hi"),
    );
    // A platform run queued after it runs: the runner was offered the tenant's run and left it.
    const platformRun = await submitAs(
      server,
      adminToken,
      flow("platform", "{group: linux, labels: [fast]}", "echo hi"),
    );
    expect((await waitForRun(server.url, platformRun, isFinal)).status).toBe("success");

    const shown = await runCli(["runs", "show", acmeRun, "--server", server.url], {
      env: { RUNYARD_TOKEN: member.token },
    });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`run ${acmeRun}: acme-waits (workflow) queued`);
    expect(shown.stdout).toContain(
      "queued: waiting for a runner of tenant acme in group linux with labels [fast]: 1 runner online, none of tenant acme and none shared (start one with a runner token of tenant acme, or mark a runner --shared)",
    );
    expect(shown.stdout).not.toContain("no runners online");
  });
});

describe("runyard runner --shared", () => {
  it("is refused with a tenant's runner token, with the hint", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    const { body } = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "acme runner",
      tenant_id: "acme",
    });
    const runner = startCli(
      ["runner", "--server", server.url, "--token", body.token, "--id", "acme-shared", "--shared"],
      { RUNYARD_LOG_LEVEL: "error" },
    );
    started.push(runner);
    expect(await runner.exited).toBe(2);
    expect(runner.output()).toContain(
      'runner "acme-shared" asks to be shared, but its runner token belongs to tenant "acme"',
    );
    expect(runner.output()).toContain(
      "hint: A runner of a tenant serves that tenant alone and cannot be shared",
    );
    const { body: runners } = await api<Array<{ id: string }>>(server.url, "GET", "/api/runners");
    expect(runners.map((r) => r.id)).not.toContain("acme-shared");
  });

  it.each([
    {
      why: "where bubblewrap is missing",
      // Node is started by its full path; the runner's PATH has no bwrap.
      env: () => ({ PATH: tempDir() }),
      error: "error: a shared runner must isolate each run, but bubblewrap (bwrap) is not installed",
      hint: "hint: install it (Debian/Ubuntu: apt-get install bubblewrap)",
    },
    {
      why: "when its operator turned the sandbox off",
      // The operator's own switch is what this case is about.
      env: () => ({ RUNYARD_SANDBOX: "off" }),
      error: "error: a shared runner must isolate each run, but RUNYARD_SANDBOX is off",
      hint: "hint: Unset RUNYARD_SANDBOX",
    },
  ])("exits 2 with the hint $why", async ({ env, error, hint }) => {
    const server = await startTestServer();
    started.push(server.proc);
    const runner = startCli(
      [
        "runner",
        "--server",
        server.url,
        "--token",
        await runnerToken(server.url),
        "--id",
        "unshareable",
        "--shared",
      ],
      { RUNYARD_LOG_LEVEL: "error", ...env() },
    );
    started.push(runner);
    expect(await runner.exited).toBe(2);
    expect(runner.output()).toContain(error);
    expect(runner.output()).toContain(hint);
  });
});

/** One runner hello under `id` with `token`: "welcome", or what else ended it. */
function helloAs(url: string, token: string, id: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace(/^http/, "ws")}${runnerSocketPath}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const done = (answer: string) => {
      socket.terminate();
      resolve(answer);
    };
    socket.on("error", () => done("error"));
    socket.on("close", () => done("closed"));
    socket.on("open", () =>
      socket.send(
        JSON.stringify({ type: "hello", jobs: [], runner: { id, hostname: "member", capacity: 1 } }),
      ),
    );
    socket.on("message", (data) => done((JSON.parse(String(data)) as { type: string }).type));
  });
}
