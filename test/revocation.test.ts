import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import { alive, stepProcessGroup, until } from "./helpers/processes.js";
import {
  adminToken,
  api,
  expectRunnerLoss,
  isFinal,
  type Proc,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

// About a runner's loss: its leases are short (helpers/server.ts).
expectRunnerLoss();

/**
 * A step in `dir` (a `stepDir`) that marks it started, then waits for `release` (at most 90 s): far
 * past the tests' nets, so a step that goes within them was stopped, and did not end on its own.
 */
const heldFlow = (dir: string): string => `version: v0.1
name: held
inventory:
  hosts:
    a: {group: default}
steps:
  - name: hold
    targets: [a]
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo started > ${dir}/started
        for i in $(seq 1 1800); do [ -e ${dir}/release ] && break; sleep 0.05; done
        echo done
`;

/** A step whose only effect is the marker file it writes, in its cwd (a `stepDir`). */
const markerFlow = (marker: string): string => `version: v0.1
name: marker
inventory:
  hosts:
    a: {group: default}
steps:
  - name: mark
    targets: [a]
    action: cmd.run
    args:
      cwd: ${dirname(marker)}
      cmd: touch ${marker}
`;

/** The held step's process group on this machine, once it runs (its `$$` is the sandbox's pid). */
function heldStepGroup(dir: string): number {
  const group = stepProcessGroup(dir);
  if (group === undefined) throw new Error(`no process of the step in ${dir} runs`);
  return group;
}

async function createRunnerToken(url: string): Promise<{ id: string; token: string }> {
  const { status, body } = await api<{ id: string; token: string }>(url, "POST", "/api/tokens", {
    kind: "runner",
    name: "to revoke",
  });
  expect(status).toBe(201);
  return body;
}

async function runnerStatus(url: string, id: string): Promise<string | undefined> {
  const { body } = await api<Array<{ id: string; status: string }>>(url, "GET", "/api/runners");
  return body.find((runner) => runner.id === id)?.status;
}

/** Resolves once `check` answers true, asking every 20 ms; fails after `timeoutMs`. */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

describe("revoking a runner token", () => {
  let server: TestServer;

  it("closes its runner's socket within a second, ends its running job, and gives it no new run", async () => {
    server = await startTestServer();
    started.push(server.proc);
    const token = await createRunnerToken(server.url);
    const runner = await startRunner(server.url, token.token, { id: "revoked-runner" });
    started.push(runner);
    const dir = stepDir();
    const held = await submit(server.url, heldFlow(dir));
    await until("the held step runs", () => existsSync(join(dir, "started")));
    const stepPid = heldStepGroup(dir);
    expect(alive(stepPid)).toBe(true);

    const revoke = await runCli(["token", "revoke", token.id], {
      env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken },
    });
    expect(revoke.code, revoke.stderr).toBe(0);
    // At once: the revoke answers only once the server has closed the socket and marked the runner
    // offline, so it is offline at the answer, with no time for a lease or a sweep to do it; the
    // close then reaches the runner (the wait is a net on a loaded machine, not the bound).
    expect(await runnerStatus(server.url, "revoked-runner")).toBe("offline");
    await runner.waitFor("the server closed the connection: runner token revoked", 30_000);

    // The job it was running ends (no retry: the run is interrupted, not run out: the step holds
    // 90 s) and its process stops.
    const ended = await waitForRun(server.url, held, isFinal, 30_000);
    expect(ended.error?.code).toBe("RUNNER_LOST");
    expect(ended.error?.message).toContain("token was revoked");
    await until("the step's process is gone", () => !alive(stepPid), 30_000);

    // A run submitted now stays queued: the runner keeps knocking and is refused each time.
    const marker = join(stepDir(), "marker");
    const queued = await submit(server.url, markerFlow(marker));
    const refusals = (): number => runner.output().split("refused the runner token (HTTP 401)").length - 1;
    const before = refusals();
    await until("the runner tried to reconnect twice more", () => refusals() >= before + 2, 30_000);
    expect(existsSync(marker)).toBe(false);
    const run = await api<{ status: string; waiting_for: { reason?: string }[] }>(
      server.url,
      "GET",
      `/api/runs/${queued}`,
    );
    expect(run.body.status).toBe("queued");
    expect(run.body.waiting_for).toMatchObject([{ host: "a", group: "default", labels: [] }]);
    expect(run.body.waiting_for?.[0]?.reason).toContain("no runners online");
  });
});

/** An open SSE stream of a run; `ended` resolves when the server ends it (the body closes). */
async function openStream(url: string, runId: string, token: string): Promise<{ ended: Promise<void> }> {
  const response = await fetch(new URL(`/api/runs/${runId}/events`, url), {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(response.status).toBe(200);
  const body = response.body;
  if (!body) throw new Error("the stream has no body");
  const ended = (async () => {
    for await (const _chunk of body) {
      // Events and keep-alives: read until the server ends the stream.
    }
  })();
  return { ended };
}

/**
 * How long after a revocation's answer its streams must have ended. The server ends them before it
 * answers; what is left is this process reading the end, a net for a loaded machine. A stream the
 * revocation missed ends only at its keep-alive, 15 s after it opened (src/server/sse.ts), which
 * the CLI's answer comes well before.
 */
const streamEndMs = 5000;

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe("removing a user or revoking a user token", () => {
  /** One server for both: each removes or revokes only the user or token it made. */
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.proc.kill("SIGKILL"));

  it("ends the user's open event streams and their token answers 401 within a second", async () => {
    const admin = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken };
    const added = await runCli(["user", "add", "ana", "--tenant", "acme", "--role", "member"], {
      env: admin,
    });
    expect(added.code, added.stderr).toBe(0);
    const password = added.stdout.trim();
    const session = await api<{ token: string }>(
      server.url,
      "POST",
      "/api/auth/login",
      { username: "ana", password },
      "",
    );
    expect(session.status).toBe(200);
    const personal = await api<{ token: string }>(
      server.url,
      "POST",
      "/api/tokens",
      { kind: "user", name: "laptop" },
      session.body.token,
    );
    expect(personal.status).toBe(201);
    // No runner of tenant acme: the run stays queued and its stream stays open.
    const submitted = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/runs",
      { kind: "workflow", workflow: markerFlow(join(stepDir(), "never")) },
      personal.body.token,
    );
    expect(submitted.status).toBe(201);
    const runId = submitted.body.run_id;
    const byToken = await openStream(server.url, runId, personal.body.token);
    const bySession = await openStream(server.url, runId, session.body.token);
    expect(await settlesWithin(byToken.ended, 300)).toBe(false);

    const removed = await runCli(["user", "remove", "ana"], { env: admin });
    expect(removed.code, removed.stderr).toBe(0);
    expect(await settlesWithin(byToken.ended, streamEndMs)).toBe(true);
    expect(await settlesWithin(bySession.ended, streamEndMs)).toBe(true);
    expect((await api(server.url, "GET", "/api/runs", undefined, personal.body.token)).status).toBe(401);
    expect((await api(server.url, "GET", "/api/runs", undefined, session.body.token)).status).toBe(401);
  });

  it("ends an event stream opened with a revoked admin-made user token", async () => {
    const made = await api<{ id: string; token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "dashboard",
    });
    const runId = await submit(server.url, markerFlow(join(stepDir(), "never")));
    const stream = await openStream(server.url, runId, made.body.token);
    expect(await settlesWithin(stream.ended, 300)).toBe(false);

    const revoke = await runCli(["token", "revoke", made.body.id], {
      env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken },
    });
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(await settlesWithin(stream.ended, streamEndMs)).toBe(true);
    expect((await api(server.url, "GET", "/api/runs", undefined, made.body.token)).status).toBe(401);
  });
});

const postgresAdminUrl = inject("postgresAdminUrl");

/**
 * Listens to the replicas' fleet channel (src/store/postgres-link.ts) as a replica does; `heard`
 * resolves with the time (`Date.now()`) the first message `matches` arrived, within 30 s.
 */
async function fleetMessage(
  databaseUrl: string,
  matches: (message: { type?: string; id?: string }) => boolean,
): Promise<{ heard: Promise<number>; stop: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query("listen runyard_fleet");
  let timer: NodeJS.Timeout | undefined;
  const heard = new Promise<number>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error("no replica told the fleet in 30 s")), 30_000);
    client.on("notification", (notification) => {
      const message = JSON.parse(notification.payload ?? "null") as { type?: string; id?: string } | null;
      if (message && matches(message)) resolve(Date.now());
    });
  });
  heard.catch(() => undefined);
  return {
    heard,
    stop: async () => {
      clearTimeout(timer);
      await client.end();
    },
  };
}

describe.skipIf(!postgresAdminUrl)("revoking a runner token on one replica of several", () => {
  it("closes the runner's socket on the replica it is connected to within a second", async () => {
    const databaseUrl = await createTestDatabase(postgresAdminUrl);
    const shared = {
      RUNYARD_DATABASE_URL: databaseUrl,
      RUNYARD_SECRET_KEY: "revocation-test-secret-key-0123456789abcdef",
      RUNYARD_REPLICA_HEARTBEAT_MS: "300",
      RUNYARD_REPLICA_LEASE_MS: "2000",
    };
    // The runner's replica sweeps for lost messages once a minute (RUNYARD_REPLICA_SWEEP_MS), far
    // past this test's bound: only the fleet's message can close the socket in time.
    const [first, second] = await Promise.all([
      startTestServer(tempDir(), shared),
      startTestServer(tempDir(), { ...shared, RUNYARD_REPLICA_SWEEP_MS: "60000" }),
    ]);
    started.push(first.proc, second.proc);
    const token = await createRunnerToken(first.url);
    // The runner is connected to the second replica; the token is revoked through the first.
    const runner = await startRunner(second.url, token.token, { id: "revoked-elsewhere" });
    started.push(runner);
    const dir = stepDir();
    const held = await submit(first.url, heldFlow(dir));
    await until("the held step runs", () => existsSync(join(dir, "started")));
    const stepPid = heldStepGroup(dir);

    // The first replica tells the fleet; the second closes the socket on that word. Timed from the
    // word as this test hears it to the runner's own time of the close (its log line's), not from
    // the CLI's answer: the CLI's exit and this test's reading of the runner's output are no
    // replica's doing. The sweep that makes up for a lost word (src/server/fleet/fleet-relay.ts)
    // comes a minute apart here, so a close within the second is the word's.
    const told = await fleetMessage(
      databaseUrl,
      (message) => message.type === "revoked" && message.id === token.id,
    );
    try {
      const closed = runner.waitFor(
        /\{[^\n]*"msg":"the server closed the connection: runner token revoked"[^\n]*\}/,
        30_000,
      );
      const revoke = await runCli(["token", "revoke", token.id], {
        env: { RUNYARD_SERVER_URL: first.url, RUNYARD_TOKEN: adminToken },
      });
      expect(revoke.code, revoke.stderr).toBe(0);
      const [toldAt, closedLine] = await Promise.all([told.heard, closed]);
      const closedAt = (JSON.parse(closedLine) as { time: number }).time;
      expect(closedAt - toldAt, "from the fleet's word to the runner's close, in ms").toBeLessThan(1000);
    } finally {
      await told.stop();
    }
    await eventually(
      "the runner is offline",
      async () => (await runnerStatus(first.url, "revoked-elsewhere")) === "offline",
      30_000,
    );
    const ended = await waitForRun(first.url, held, isFinal, 30_000);
    expect(ended.error?.code).toBe("RUNNER_LOST");
    await until("the step's process is gone", () => !alive(stepPid), 30_000);

    const marker = join(stepDir(), "marker");
    const queued = await submit(second.url, markerFlow(marker));
    const refusals = (): number => runner.output().split("refused the runner token (HTTP 401)").length - 1;
    const before = refusals();
    await until("the runner tried to reconnect twice more", () => refusals() >= before + 2, 30_000);
    expect(existsSync(marker)).toBe(false);
    const run = await api<{ status: string }>(first.url, "GET", `/api/runs/${queued}`);
    expect(run.body.status).toBe("queued");
  });

  it("closes the socket of a runner whose token is gone from the database at the next sweep, with no message told", async () => {
    const databaseUrl = await createTestDatabase(postgresAdminUrl);
    const server = await startTestServer(tempDir(), {
      RUNYARD_DATABASE_URL: databaseUrl,
      RUNYARD_SECRET_KEY: "revocation-test-secret-key-0123456789abcdef",
      RUNYARD_REPLICA_SWEEP_MS: "200",
    });
    started.push(server.proc);
    const token = await createRunnerToken(server.url);
    const runner = await startRunner(server.url, token.token, { id: "swept" });
    started.push(runner);
    // The token's row goes as a revocation whose message was lost: no replica acts, none is told.
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      await client.query("delete from tokens where id = $1", [token.id]);
    } finally {
      await client.end();
    }
    await runner.waitFor("the server closed the connection: runner token revoked", 30_000);
    // The server closes the socket, then records the runner offline.
    await eventually(
      "the runner is offline",
      async () => (await runnerStatus(server.url, "swept")) === "offline",
      30_000,
    );
  });

  it("ends nothing for a revoked message any database session can send while the token exists", async () => {
    const databaseUrl = await createTestDatabase(postgresAdminUrl);
    const server = await startTestServer(tempDir(), {
      RUNYARD_DATABASE_URL: databaseUrl,
      RUNYARD_SECRET_KEY: "revocation-test-secret-key-0123456789abcdef",
    });
    started.push(server.proc);
    const token = await createRunnerToken(server.url);
    const runner = await startRunner(server.url, token.token, { id: "not-revoked" });
    started.push(runner);
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      await client.query("select pg_notify('runyard_fleet', $1)", [
        JSON.stringify({ type: "revoked", credential: "token", id: token.id, from: "forged" }),
      ]);
    } finally {
      await client.end();
    }
    // After the message, the runner still takes and runs work, and was never closed.
    const marker = join(stepDir(), "marker");
    const run = await waitForRun(server.url, await submit(server.url, markerFlow(marker)), isFinal);
    expect(run.status).toBe("success");
    expect(existsSync(marker)).toBe(true);
    expect(runner.output()).not.toContain("runner token revoked");
    expect(await runnerStatus(server.url, "not-revoked")).toBe("connected");
  });
});
