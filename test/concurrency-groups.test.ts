// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  adminToken,
  api,
  expectRunnerLoss,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

// About a runner's loss: its leases are short (helpers/server.ts).
expectRunnerLoss();

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

/**
 * The folder the deploys work in (their `cwd`, a `stepDir`, so a sandboxed step sees it); each
 * test's gate folder lies inside it.
 */
const gates = stepDir();
const newGate = (): string => mkdtempSync(join(gates, "gate-"));

/**
 * A deploy of `ENV` that marks its start, then holds until the test writes `release-<ENV>` in
 * the gate folder: the test decides when each run ends, without sleeping.
 */
const gatedDeploy = (cancelInProgress = false) => `
name: deploy
concurrency:
  group: "deploy-\${ENV}"
  cancel_in_progress: ${cancelInProgress}
inventory:
  hosts:
    worker: {}
steps:
  - name: deploy
    targets: [worker]
    action: shell.run
    args:
      cwd: ${gates}
      script: |
        touch "$GATE/started-$RUNYARD_RUN_ID"
        while [ ! -f "$GATE/release-$ENV" ]; do sleep 0.05; done
`;

interface GroupRunView {
  run_id: string;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  concurrency_group: string | null;
  waiting_for?: Array<{ host: string; reason: string | null }>;
  error: { code: string } | null;
}

async function submitAs(
  server: TestServer,
  vars: Record<string, string>,
  workflow = gatedDeploy(),
  token = adminToken,
): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { workflow, vars },
    token,
  );
  expect(status, JSON.stringify(body)).toBe(201);
  return body.run_id;
}

async function view(server: TestServer, runId: string, token = adminToken): Promise<GroupRunView> {
  return (await api<GroupRunView>(server.url, "GET", `/api/runs/${runId}`, undefined, token)).body;
}

/** Waits until a run's step has started on its runner (it wrote its mark). */
/**
 * Until the run's step has started and the server knows the run runs: the step's file can appear
 * before the runner's report of the start is stored, and what a later run of the group is told
 * ("is running" or "holds it, waiting for a runner") depends on the stored state.
 */
async function untilStarted(server: TestServer, gate: string, runId: string): Promise<void> {
  await waitForRun(
    server.url,
    runId,
    (run) => (existsSync(join(gate, `started-${runId}`)) && run.status === "running") || isFinal(run),
  );
  expect(existsSync(join(gate, `started-${runId}`)), `${runId} never started`).toBe(true);
}

/**
 * One server and its runner for the tests of one server, started at the first's start: each test
 * ends every run it started (so no group is held after it), in a gate folder of its own; what
 * else it starts (tenants' runners) is killed after it.
 */
let shared: Promise<{ server: TestServer; runner: Proc }> | undefined;
async function serverWithRunner(): Promise<TestServer> {
  shared ??= (async () => {
    const server = await startTestServer();
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "worker",
      capacity: 4,
    });
    return { server, runner };
  })();
  return (await shared).server;
}
afterAll(async () => {
  if (!shared) return;
  const { server, runner } = await shared;
  await Promise.all([runner.kill("SIGKILL"), server.proc.kill("SIGKILL")]);
});

describe("concurrency groups", () => {
  it("keeps a second run of the group queued, saying why, until the first ends; others run meanwhile", async () => {
    const server = await serverWithRunner();
    const gate = newGate();
    const first = await submitAs(server, { ENV: "prod", GATE: gate });
    await untilStarted(server, gate, first);
    const second = await submitAs(server, { ENV: "prod", GATE: gate });
    const third = await submitAs(server, { ENV: "prod", GATE: gate });
    // Another group (ENV=staging) is not held up, and ends while the prod runs wait.
    writeFileSync(join(gate, "release-staging"), "");
    const staging = await submitAs(server, { ENV: "staging", GATE: gate });
    expect((await waitForRun(server.url, staging, isFinal)).status).toBe("success");

    const waiting = await view(server, second);
    expect(waiting.status).toBe("queued");
    expect(waiting.concurrency_group).toBe("deploy-prod");
    expect(waiting.waiting_for?.map((need) => need.reason)).toEqual([
      `waiting for concurrency group deploy-prod (${first} is running)`,
    ]);
    expect((await view(server, third)).waiting_for?.[0]?.reason).toBe(
      `waiting for concurrency group deploy-prod (${first} is running)`,
    );
    // The runner has room: the waiting runs hold none of it, and none of their steps ran.
    expect(existsSync(join(gate, `started-${second}`))).toBe(false);
    const shown = await runCli(["runs", "show", second, "--server", server.url], {
      env: { RUNYARD_TOKEN: adminToken },
    });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`run ${second}: deploy (workflow) queued`);
    expect(shown.stdout).toContain(`queued: waiting for concurrency group deploy-prod (${first} is running)`);

    writeFileSync(join(gate, "release-prod"), "");
    const runs = await Promise.all([first, second, third].map((id) => waitForRun(server.url, id, isFinal)));
    expect(runs.map((run) => run.status)).toEqual(["success", "success", "success"]);
    const [a, b, c] = (await Promise.all([first, second, third].map((id) => view(server, id)))) as [
      GroupRunView,
      GroupRunView,
      GroupRunView,
    ];
    // One at a time, in submit order.
    expect(Date.parse(b.started_at ?? "")).toBeGreaterThanOrEqual(Date.parse(a.finished_at ?? ""));
    expect(Date.parse(c.started_at ?? "")).toBeGreaterThanOrEqual(Date.parse(b.finished_at ?? ""));
    const notice = (await readEvents(server.url, second)).find((event) => event.type === "notice");
    expect(notice).toMatchObject({
      message: `waiting for concurrency group deploy-prod (${first} is running)`,
    });
  }, 60_000);

  it("moves on when the holder fails or is canceled", async () => {
    const server = await serverWithRunner();
    const gate = newGate();
    const failing = gatedDeploy().replace(
      'touch "$GATE/started-$RUNYARD_RUN_ID"',
      'touch "$GATE/started-$RUNYARD_RUN_ID"; exit 3',
    );
    const failed = await submitAs(server, { ENV: "prod", GATE: gate }, failing);
    const holder = await submitAs(server, { ENV: "prod", GATE: gate });
    const next = await submitAs(server, { ENV: "prod", GATE: gate });
    expect((await waitForRun(server.url, failed, isFinal)).status).toBe("failed");
    await untilStarted(server, gate, holder);
    expect((await view(server, next)).status).toBe("queued");
    expect((await api(server.url, "POST", `/api/runs/${holder}/cancel`)).status).toBe(200);
    expect((await waitForRun(server.url, holder, isFinal)).status).toBe("canceled");
    await untilStarted(server, gate, next);
    writeFileSync(join(gate, "release-prod"), "");
    expect((await waitForRun(server.url, next, isFinal)).status).toBe("success");
  }, 60_000);

  it("cancels a run waiting for its group at once, and the holder runs on", async () => {
    const server = await serverWithRunner();
    const gate = newGate();
    const holder = await submitAs(server, { ENV: "prod", GATE: gate });
    await untilStarted(server, gate, holder);
    const waiting = await submitAs(server, { ENV: "prod", GATE: gate });
    await waitForRun(server.url, waiting, (run) =>
      Boolean((run as unknown as GroupRunView).waiting_for?.[0]?.reason?.includes("concurrency group")),
    );
    const { status, body } = await api<{ status: string }>(server.url, "POST", `/api/runs/${waiting}/cancel`);
    expect(status).toBe(200);
    expect(body.status).toBe("canceled");
    const canceled = await view(server, waiting);
    expect(canceled.error?.code).toBe("CANCELED");
    expect(canceled.started_at).toBeNull();
    expect(existsSync(join(gate, `started-${waiting}`))).toBe(false);
    expect((await view(server, holder)).status).toBe("running");
    writeFileSync(join(gate, "release-prod"), "");
    expect((await waitForRun(server.url, holder, isFinal)).status).toBe("success");
  }, 60_000);

  it("with cancel_in_progress, a new run cancels the running one and those waiting, then runs", async () => {
    const server = await serverWithRunner();
    const gate = newGate();
    const workflow = gatedDeploy(true);
    const running = await submitAs(server, { ENV: "prod", GATE: gate }, workflow);
    await untilStarted(server, gate, running);
    // Queued behind a run that is not canceled (it does not ask to), then replaced by the newest.
    const pending = await submitAs(server, { ENV: "prod", GATE: gate }, gatedDeploy(false));
    const newest = await submitAs(server, { ENV: "prod", GATE: gate }, workflow);
    expect((await waitForRun(server.url, running, isFinal)).status).toBe("canceled");
    expect((await waitForRun(server.url, pending, isFinal)).status).toBe("canceled");
    expect(existsSync(join(gate, `started-${pending}`))).toBe(false);
    await untilStarted(server, gate, newest);
    writeFileSync(join(gate, "release-prod"), "");
    expect((await waitForRun(server.url, newest, isFinal)).status).toBe("success");
  }, 60_000);

  it("keeps tenants apart: another tenant's run of a group of the same name is not held up", async () => {
    const server = await serverWithRunner();
    const tokens: Record<string, string> = {};
    for (const tenant of ["acme", "globex"]) {
      const made = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "user",
        name: tenant,
        tenant_id: tenant,
      });
      tokens[tenant] = made.body.token;
      const runner = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "runner",
        name: `${tenant} runner`,
        tenant_id: tenant,
      });
      started.push(await startRunner(server.url, runner.body.token, { id: `${tenant}-runner` }));
    }
    const gate = newGate();
    const acme = await submitAs(server, { ENV: "prod", GATE: gate }, gatedDeploy(), tokens.acme);
    await untilStarted(server, gate, acme);
    const globexGate = newGate();
    writeFileSync(join(globexGate, "release-prod"), "");
    const globex = await submitAs(server, { ENV: "prod", GATE: globexGate }, gatedDeploy(), tokens.globex);
    expect((await waitForRun(server.url, globex, isFinal)).status).toBe("success");
    expect((await view(server, acme)).status).toBe("running");
    // Nor may globex see or cancel acme's run of the group.
    expect((await view(server, acme, tokens.globex)) as unknown).toMatchObject({
      error: { code: "NOT_FOUND" },
    });
    writeFileSync(join(gate, "release-prod"), "");
    expect((await waitForRun(server.url, acme, isFinal)).status).toBe("success");
  }, 60_000);

  it("refuses at submit a group whose variable the run does not set, storing nothing", async () => {
    const server = await serverWithRunner();
    const { body: before } = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs");
    const { status, body } = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/runs",
      { workflow: gatedDeploy(), vars: { GATE: "/tmp" }, file: "deploy.yaml" },
    );
    expect(status).toBe(400);
    expect(body.error.code).toBe("INVALID_INPUT");
    expect(body.error.message).toBe(
      'deploy.yaml:4:3: concurrency group "deploy-${ENV}" uses ${ENV}, which the run does not set',
    );
    expect(body.error.hint).toContain("--var ENV=");
    const { body: list } = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs");
    expect(list.runs).toEqual(before.runs);
  });

  it("is ignored by a local run, which says so", async () => {
    const dir = tempDir();
    const file = join(dir, "deploy.yaml");
    writeFileSync(file, gatedDeploy());
    writeFileSync(join(dir, "release-prod"), "");
    const result = await runCli(["run", file, "--var", "ENV=prod", "--var", `GATE=${dir}`]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      'notice: concurrency group "deploy-${ENV}" is ignored by a local run; runs of a group take turns on a server',
    );
  });
});

const adminUrl = inject("postgresAdminUrl");
/**
 * Replica leases of 4 s: these tests are about the group, not how soon a death is seen, and with
 * 2 s a replica alive but slow on a busy machine was presumed dead (it exited, and the test with it).
 */
const replicaEnv = {
  RUNYARD_SECRET_KEY: "concurrency-test-secret-key-0123456789abcdef",
  RUNYARD_REPLICA_HEARTBEAT_MS: "300",
  RUNYARD_REPLICA_LEASE_MS: "4000",
};

async function replica(databaseUrl: string): Promise<TestServer> {
  const server = await startTestServer(tempDir(), { RUNYARD_DATABASE_URL: databaseUrl, ...replicaEnv });
  started.push(server.proc);
  return server;
}

/** A deploy that notes, in the gate folder, each run it sees start and any run it finds holding the group. */
const exclusiveDeploy = `
name: deploy
concurrency: deploy-prod
inventory:
  hosts:
    worker: {}
steps:
  - name: deploy
    targets: [worker]
    action: shell.run
    args:
      cwd: ${gates}
      script: |
        if ! mkdir "$GATE/held"; then echo "$RUNYARD_RUN_ID" >> "$GATE/overlaps"; fi
        echo "$RUNYARD_RUN_ID" >> "$GATE/order"
        sleep 0.3
        rmdir "$GATE/held"
`;

describe.skipIf(!adminUrl)("concurrency groups across PostgreSQL replicas", () => {
  it("runs the group's runs submitted to both replicas one at a time, in submit order", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const a = await replica(databaseUrl);
    const b = await replica(databaseUrl);
    const token = await runnerToken(a.url);
    started.push(await startRunner(`${a.url},${b.url}`, token, { id: "on-a", capacity: 4 }));
    started.push(await startRunner(`${b.url},${a.url}`, token, { id: "on-b", capacity: 4 }));
    const gate = newGate();
    const runs: string[] = [];
    for (let i = 0; i < 6; i++)
      runs.push(await submit(i % 2 === 0 ? a.url : b.url, exclusiveDeploy, { GATE: gate }));
    for (const id of runs) expect((await waitForRun(b.url, id, isFinal, 60_000)).status, id).toBe("success");
    expect(existsSync(join(gate, "overlaps")), "two runs of the group ran at once").toBe(false);
    expect(readFileSync(join(gate, "order"), "utf8").trim().split("\n")).toEqual(runs);
  }, 120_000);

  it("moves the group on once a run held by a replica killed -9 is interrupted", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const a = await replica(databaseUrl);
    const b = await replica(databaseUrl);
    const token = await runnerToken(a.url);
    const doomedRunner = await startRunner(a.url, token, { id: "doomed", capacity: 1 });
    started.push(doomedRunner);
    const gate = newGate();
    const holder = await submit(a.url, gatedDeploy(), { ENV: "prod", GATE: gate });
    await untilStarted(a, gate, holder);
    started.push(await startRunner(b.url, token, { id: "survivor", capacity: 2 }));
    const waiting = await submit(b.url, gatedDeploy(), { ENV: "prod", GATE: gate });
    await waitForRun(
      b.url,
      waiting,
      (run) =>
        (run as unknown as GroupRunView).waiting_for?.[0]?.reason ===
        `waiting for concurrency group deploy-prod (${holder} is running)`,
    );
    // The replica carrying the holder and the runner running its step die together.
    await a.proc.kill("SIGKILL");
    await doomedRunner.kill("SIGKILL");
    const lost = await waitForRun(b.url, holder, isFinal, 30_000);
    expect(lost.status).toBe("interrupted");
    expect(lost.error?.code).toBe("RUNNER_LOST");
    await untilStarted(b, gate, waiting);
    writeFileSync(join(gate, "release-prod"), "");
    expect((await waitForRun(b.url, waiting, isFinal)).status).toBe("success");
  }, 120_000);

  it("keeps the group held by a run adopted from a replica killed -9, and moves on when it ends", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const a = await replica(databaseUrl);
    const b = await replica(databaseUrl);
    const token = await runnerToken(a.url);
    // The runner knows both replicas: it moves to B and the adopted run goes on there.
    started.push(await startRunner(`${a.url},${b.url}`, token, { id: "mover", capacity: 4 }));
    const gate = newGate();
    const holder = await submit(a.url, gatedDeploy(), { ENV: "prod", GATE: gate });
    await untilStarted(a, gate, holder);
    const waiting = await submit(a.url, gatedDeploy(), { ENV: "prod", GATE: gate });
    await waitForRun(b.url, waiting, (run) =>
      Boolean((run as unknown as GroupRunView).waiting_for?.[0]?.reason?.includes("concurrency group")),
    );
    await a.proc.kill("SIGKILL");
    // B adopts both: the holder keeps the group, the other still waits for it.
    const adopted = async () => {
      const { rows } = await sqlQuery(databaseUrl, "select replica_id from runs where id = $1", [holder]);
      return rows[0]?.replica_id as string;
    };
    const bId = (await api<{ replica: string }>(b.url, "GET", "/health")).body.replica;
    const deadline = Date.now() + 30_000;
    while ((await adopted()) !== bId && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await adopted()).toBe(bId);
    const held = await view(b, waiting);
    expect(held.status).toBe("queued");
    expect(held.waiting_for?.[0]?.reason).toBe(
      `waiting for concurrency group deploy-prod (${holder} is running)`,
    );
    writeFileSync(join(gate, "release-prod"), "");
    expect((await waitForRun(b.url, holder, isFinal, 30_000)).status).toBe("success");
    expect((await waitForRun(b.url, waiting, isFinal, 30_000)).status).toBe("success");
    const [first, second] = await Promise.all([view(b, holder), view(b, waiting)]);
    expect(Date.parse(second?.started_at ?? "")).toBeGreaterThanOrEqual(Date.parse(first?.finished_at ?? ""));
  }, 120_000);
});

async function sqlQuery(databaseUrl: string, text: string, values: unknown[]): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}
