// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

/**
 * A deploy of `ENV` that marks its start, then holds until the test writes `release-<ENV>` in
 * the gate folder: the test decides when each run ends, without sleeping.
 */
export const gatedDeploy = (cancelInProgress = false) => `
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
async function untilStarted(server: TestServer, gate: string, runId: string): Promise<void> {
  await waitForRun(server.url, runId, (run) => existsSync(join(gate, `started-${runId}`)) || isFinal(run));
  expect(existsSync(join(gate, `started-${runId}`)), `${runId} never started`).toBe(true);
}

async function serverWithRunner(capacity = 4): Promise<TestServer> {
  const server = await startTestServer();
  started.push(server.proc);
  started.push(await startRunner(server.url, await runnerToken(server.url), { id: "worker", capacity }));
  return server;
}

describe("concurrency groups", () => {
  it("keeps a second run of the group queued, saying why, until the first ends; others run meanwhile", async () => {
    const server = await serverWithRunner();
    const gate = tempDir();
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
    const gate = tempDir();
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
    const gate = tempDir();
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
    const gate = tempDir();
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
    const server = await startTestServer();
    started.push(server.proc);
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
    const gate = tempDir();
    const acme = await submitAs(server, { ENV: "prod", GATE: gate }, gatedDeploy(), tokens.acme);
    await untilStarted(server, gate, acme);
    const globexGate = tempDir();
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
    const server = await startTestServer();
    started.push(server.proc);
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
    expect(list.runs).toEqual([]);
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
