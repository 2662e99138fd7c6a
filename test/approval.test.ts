// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  adminToken,
  api,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/*
 * Approval steps through a real server, real runners and the built CLI: the run waits (holding no
 * runner) until a listed approver of its tenant answers, and the answer, its author and comment
 * are events and audit entries. The wait outlives a kill -9 of the server, and an answer given to
 * one replica reaches the engine on another.
 */

interface Approval {
  step: string;
  message: string;
  approvers: string[];
  deadline: string;
  status: string;
  answered_by: string | null;
  comment: string | null;
  may_answer: boolean;
}
interface Run {
  run_id: string;
  status: string;
  steps: Array<{ name: string; host: string; status: string }>;
  error: { code: string; message: string } | null;
  approvals?: Approval[];
}
interface ErrorBody {
  error: { code: string; message: string; hint: string };
}

const release = (approvers: string, timeout = 600, extra = "") => `name: release
vars: {VERSION: "1.2"}
steps:
  - name: build
    action: cmd.run
    args: {cmd: echo built}
  - name: go-live
    action: approval
    args:
      message: "Ship \${VERSION} to production?"
      approvers: ${approvers}
      timeout_seconds: ${timeout}
${extra}  - name: ship
    action: cmd.run
    args: {cmd: echo shipped}
`;

const procs: Proc[] = [];

/** Users of tenant acme (and one of tenant other), each with a session token. */
async function people(url: string): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const [username, role, tenant] of [
    ["ann", "member", "acme"],
    ["bob", "member", "acme"],
    ["ada", "admin", "acme"],
    ["eve", "member", "other"],
  ] as const) {
    const password = `${username}-password-123`;
    const made = await api(url, "POST", "/api/users", { username, role, tenant_id: tenant, password });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const login = await api<{ token: string }>(url, "POST", "/api/auth/login", { username, password }, "");
    tokens[username] = login.body.token;
  }
  return tokens;
}

async function acmeRunner(url: string, id: string): Promise<Proc> {
  const made = await api<{ token: string }>(url, "POST", "/api/tokens", {
    kind: "runner",
    name: id,
    tenant_id: "acme",
  });
  const proc = await startRunner(url, made.body.token, { id });
  procs.push(proc);
  return proc;
}

async function submitAs(url: string, token: string, workflow: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(url, "POST", "/api/runs", { workflow }, token);
  expect(status, JSON.stringify(body)).toBe(201);
  return body.run_id;
}

function getRun(url: string, runId: string, token: string): Promise<Run> {
  return api<Run>(url, "GET", `/api/runs/${runId}`, undefined, token).then((answer) => answer.body);
}

/** Waits until the run's approval step says it waits. */
async function untilWaiting(url: string, runId: string): Promise<void> {
  await waitForRun(url, runId, (run) =>
    run.steps.some((s) => s.name === "go-live" && s.status === "waiting"),
  );
}

function answer(url: string, runId: string, verb: "approve" | "reject", token: string, comment?: string) {
  return api<ErrorBody & { decision: string; answered_by: string }>(
    url,
    "POST",
    `/api/runs/${runId}/steps/go-live/${verb}`,
    comment === undefined ? {} : { comment },
    token,
  );
}

const cliAs = (server: TestServer, token: string) => ({
  RUNYARD_SERVER_URL: server.url,
  RUNYARD_TOKEN: token,
});

afterEach(async () => {
  await Promise.all(procs.splice(0).map((proc) => proc.kill("SIGKILL")));
});

describe("approval steps on one server", () => {
  let server: TestServer;
  let tokens: Record<string, string>;

  beforeAll(async () => {
    server = await startTestServer();
    tokens = await people(server.url);
  });
  afterAll(() => server.proc.kill("SIGKILL"));

  it("wait holding no runner, say so, and go on once a listed approver approves", async () => {
    await acmeRunner(server.url, "approval-runner-1");
    const runId = await submitAs(server.url, tokens.ann!, release("[bob, role:admin]"));
    await untilWaiting(server.url, runId);

    const seenByAnn = await getRun(server.url, runId, tokens.ann!);
    expect(seenByAnn.status).toBe("running");
    expect(seenByAnn.approvals).toEqual([
      expect.objectContaining({
        step: "go-live",
        message: "Ship 1.2 to production?",
        approvers: ["bob", "role:admin"],
        status: "waiting",
        may_answer: false,
      }),
    ]);
    expect((await getRun(server.url, runId, tokens.bob!)).approvals?.[0]?.may_answer).toBe(true);
    // No job is queued or held while the run waits: the runner is idle.
    const runners = await api<Array<{ id: string; running_jobs: string[] }>>(
      server.url,
      "GET",
      "/api/runners",
    );
    expect(runners.body.find((r) => r.id === "approval-runner-1")?.running_jobs).toEqual([]);

    const shown = await runCli(["runs", "show", runId], { env: cliAs(server, tokens.bob!) });
    expect(shown.stdout).toContain(
      'running: waiting for approval of step "go-live" by bob, role:admin until',
    );
    expect(shown.stdout).toContain("Ship 1.2 to production? (you may answer: runyard runs approve|reject)");

    // A teammate who is not listed is refused and told who may answer; another tenant sees nothing.
    const refused = await answer(server.url, runId, "approve", tokens.ann!);
    expect(refused.status).toBe(403);
    expect(refused.body.error.hint).toBe(
      "It may be answered by bob, role:admin (of tenant acme); ask one of them.",
    );
    expect((await answer(server.url, runId, "approve", tokens.eve!)).status).toBe(404);
    // A platform admin decides nothing for a tenant's run.
    expect((await answer(server.url, runId, "approve", adminToken)).status).toBe(403);

    const approved = await runCli(["runs", "approve", runId, "go-live", "--comment", "looks good"], {
      env: cliAs(server, tokens.bob!),
    });
    expect(approved.stderr).toBe("");
    expect(approved.stdout).toBe(`run ${runId}: step "go-live" approved by bob\n`);
    const done = await waitForRun(server.url, runId, (run) => run.status !== "running");
    expect(done.status).toBe("success");
    expect(done.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      "build:success",
      "go-live:success",
      "ship:success",
    ]);

    const events = await readEvents(server.url, runId);
    const approvalEvents = events.filter((e) => "step" in e && e.step === "go-live").map((e) => e.type);
    expect(approvalEvents).toEqual(["step.started", "step.waiting", "approval.answered", "step.finished"]);
    expect(events.find((e) => e.type === "approval.answered")).toMatchObject({
      decision: "approved",
      by: "bob",
      comment: "looks good",
    });

    const twice = await answer(server.url, runId, "reject", tokens.ada!);
    expect(twice.status).toBe(409);
    expect(twice.body.error.message).toMatch(/step "go-live" of run .* was approved by bob at /);

    const audit = await api<{
      events: Array<{ action: string; outcome: string; actor: { username: string }; details: unknown }>;
    }>(server.url, "GET", "/api/audit?action=run.approve");
    const mine = audit.body.events.filter((e) => JSON.stringify(e).includes(runId));
    expect(mine.map((e) => [e.actor.username, e.outcome, e.details])).toEqual(
      expect.arrayContaining([
        ["bob", "ok", { step: "go-live", comment: "looks good" }],
        ["ann", "denied", { step: "go-live" }],
      ]),
    );
  });

  it("fail the run with APPROVAL_REJECTED when an approver rejects, and run nothing after", async () => {
    await acmeRunner(server.url, "approval-runner-2");
    const runId = await submitAs(server.url, tokens.ann!, release("[bob, role:admin]"));
    await untilWaiting(server.url, runId);
    const rejected = await answer(server.url, runId, "reject", tokens.ada!, "not on a Friday");
    expect(rejected.status).toBe(200);
    expect(rejected.body).toMatchObject({ decision: "rejected", answered_by: "ada" });
    const done = await waitForRun(server.url, runId, (run) => run.status !== "running");
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({
      code: "APPROVAL_REJECTED",
      message: 'step "go-live" on server: rejected by ada: not on a Friday',
    });
    expect(done.steps.find((s) => s.name === "ship")?.status).toBe("skipped");
    const audit = await api<{ events: Array<{ target: string; actor: { username: string } }> }>(
      server.url,
      "GET",
      "/api/audit?action=run.reject",
    );
    expect(audit.body.events.find((e) => e.target === runId)?.actor.username).toBe("ada");
  });

  it("reject by itself when nobody answers before the deadline", async () => {
    await acmeRunner(server.url, "approval-runner-3");
    const runId = await submitAs(server.url, tokens.ann!, release("[bob]", 1));
    const done = await waitForRun(
      server.url,
      runId,
      (run) => run.status !== "running" && run.status !== "queued",
    );
    expect(done.status).toBe("failed");
    expect(done.error?.code).toBe("APPROVAL_TIMEOUT");
    const late = await answer(server.url, runId, "approve", tokens.bob!);
    expect(late.status).toBe(409);
    expect(late.body.error.message).toContain("timed out");
    const events: RunEvent[] = await readEvents(server.url, runId);
    expect(events.find((e) => e.type === "approval.answered")).toMatchObject({
      decision: "timeout",
      by: null,
    });
  });

  it("end canceled when the run is canceled while waiting, and take no answer after", async () => {
    await acmeRunner(server.url, "approval-runner-4");
    const runId = await submitAs(server.url, tokens.ann!, release("[bob]"));
    await untilWaiting(server.url, runId);
    const canceled = await api<{ status: string }>(
      server.url,
      "POST",
      `/api/runs/${runId}/cancel`,
      undefined,
      tokens.ann!,
    );
    expect(canceled.body.status).toBe("canceled");
    const run = await getRun(server.url, runId, tokens.ann!);
    expect(run.steps.find((s) => s.name === "go-live")?.status).toBe("canceled");
    const late = await answer(server.url, runId, "approve", tokens.bob!);
    expect(late.status).toBe(409);
    expect(late.body.error.message).toBe(`run ${runId} has ended (canceled); step "go-live" takes no answer`);
  });

  it("refuses at submit an approver who is no user of the run's tenant, and stores nothing", async () => {
    const before = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=500");
    const refused = await api<ErrorBody>(
      server.url,
      "POST",
      "/api/runs",
      { workflow: release("[eve]"), file: "release.yaml" },
      tokens.ann!,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toBe(
      'release.yaml:7:5: step "go-live" lists approver "eve", who is no user of tenant acme',
    );
    const after = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=500");
    expect(after.body.runs.length).toBe(before.body.runs.length);
  });

  it("says an approval step that has not started waiting yet takes no answer, and an unknown step is 404", async () => {
    const runId = await submitAs(server.url, tokens.ann!, release("[bob]"));
    // No runner of tenant acme is connected: the run is queued, its build step not taken up.
    const early = await answer(server.url, runId, "approve", tokens.bob!);
    expect(early.status).toBe(409);
    expect(early.body.error.message).toBe(`step "go-live" of run ${runId} is not waiting for approval yet`);
    const unknown = await api<ErrorBody>(
      server.url,
      "POST",
      `/api/runs/${runId}/steps/build/approve`,
      {},
      tokens.bob!,
    );
    expect(unknown.status).toBe(404);
    const extra = await api<ErrorBody>(
      server.url,
      "POST",
      `/api/runs/${runId}/steps/go-live/approve`,
      { comment: "ok", approve: true },
      tokens.bob!,
    );
    expect(extra.status).toBe(400);
    expect(extra.body.error.message).toContain('"approve"');
    await api(server.url, "POST", `/api/runs/${runId}/cancel`);
  });

  it("runs examples/approval.yaml through the server as its header says, answered from the CLI", async () => {
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "approval-example-runner",
    });
    procs.push(runner);
    const env = cliAs(server, adminToken);
    let approving: Promise<unknown> | undefined;
    const result = await runCli(["run", "examples/approval.yaml", "--var", "VERSION=1.3"], {
      env,
      onStdout: (chunk) => {
        const runId = /runyard runs approve (\S+) go-live/.exec(chunk)?.[1];
        if (runId && !approving)
          approving = runCli(["runs", "approve", runId, "go-live", "--comment", "change log read"], { env });
      },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("⏸ go-live waiting for approval by role:admin until");
    expect(result.stdout).toContain(": Ship 1.3 to production?");
    expect(result.stdout).toMatch(/go-live approved by token \S+: change log read/);
    expect(result.stdout).toContain("deployed 1.3");
    expect(((await approving) as { code: number }).code).toBe(0);
  });

  it("runs examples/approval-form.yaml through the server as its header says, the form filled in from the CLI", async () => {
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "approval-form-example-runner",
    });
    procs.push(runner);
    const env = cliAs(server, adminToken);
    let approving: Promise<unknown> | undefined;
    const result = await runCli(["run", "examples/approval-form.yaml"], {
      env,
      onStdout: (chunk) => {
        const runId = /runyard runs approve (\S+) go-live/.exec(chunk)?.[1];
        if (runId && !approving)
          approving = runCli(
            ["runs", "approve", runId, "go-live", "--input", "REGION=eu", "--input", "REPLICAS=4"],
            { env },
          );
      },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("⏸ go-live waiting for approval by role:admin until");
    expect(result.stdout).toContain(": Where does this release go?");
    expect(result.stdout).toContain("deploying to eu with 4 replicas");
    const answered = (await approving) as { code: number; stdout: string };
    expect(answered.code).toBe(0);
    expect(answered.stdout).toContain("REGION=eu");
    expect(answered.stdout).toContain("REPLICAS=4");
  });

  it("refuses a local run of a workflow with an approval step, before anything runs", async () => {
    const file = writeWorkflow(release("[bob]"));
    const result = await runCli(["run", file]);
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain("built");
    expect(result.stderr).toBe(
      `error: an approval step cannot run without a server: approvers answer through its API\n${file}:7:5: step "go-live"\nhint: An approval step waits for a person to answer through a server: submit the workflow with \`runyard run FILE --server URL\` (\`runyard up\` starts one).\n`,
    );
  });
});

describe("an approval wait outlives its server", () => {
  it("keeps waiting, to the same deadline, after the server is killed -9 and started again", async () => {
    const home = tempDir();
    let server = await startTestServer(home);
    const tokens = await people(server.url);
    await acmeRunner(server.url, "approval-restart-runner");
    const runId = await submitAs(server.url, tokens.ann!, release("[bob]"));
    await untilWaiting(server.url, runId);
    const before = (await getRun(server.url, runId, tokens.bob!)).approvals?.[0];
    const port = new URL(server.url).port;
    await server.proc.kill("SIGKILL");

    server = await startTestServer(home, {}, Number(port));
    procs.push(server.proc);
    const after = await getRun(server.url, runId, tokens.bob!);
    expect(after.status).toBe("running");
    expect(after.approvals?.[0]).toMatchObject({
      status: "waiting",
      deadline: before?.deadline,
      may_answer: true,
    });
    expect((await answer(server.url, runId, "approve", tokens.bob!)).status).toBe(200);
    const done = await waitForRun(server.url, runId, (run) => run.status !== "running");
    expect(done.status).toBe("success");
    const events = await readEvents(server.url, runId);
    expect(events.filter((e) => e.type === "step.waiting")).toHaveLength(1);
    expect(events.filter((e) => e.type === "step.started" && e.step === "go-live")).toHaveLength(1);
  });
});

describe("approval steps across two replicas (PostgreSQL)", () => {
  const adminUrl = inject("postgresAdminUrl");
  const env = (databaseUrl: string) => ({
    RUNYARD_DATABASE_URL: databaseUrl,
    RUNYARD_SECRET_KEY: "approval-test-secret-key-0123456789abcdef",
    RUNYARD_REPLICA_HEARTBEAT_MS: "300",
    RUNYARD_REPLICA_LEASE_MS: "2000",
  });

  it("takes an answer given to the replica that does not carry the run", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    // The replicas start at once: either may lead, and the run is the carrier's whichever does.
    const [carrier, other] = await Promise.all([
      startTestServer(tempDir(), env(databaseUrl)),
      startTestServer(tempDir(), env(databaseUrl)),
    ]);
    procs.push(carrier.proc, other.proc);
    const tokens = await people(carrier.url);
    await acmeRunner(carrier.url, "approval-replica-runner");
    const runId = await submitAs(carrier.url, tokens.ann!, release("[bob]"));
    await untilWaiting(carrier.url, runId);
    expect((await getRun(other.url, runId, tokens.bob!)).approvals?.[0]?.status).toBe("waiting");

    const asked = Date.now();
    const approved = await answer(other.url, runId, "approve", tokens.bob!, "from the other replica");
    expect(approved.status).toBe(200);
    const done = await waitForRun(other.url, runId, (run) => run.status !== "running");
    expect(done.status).toBe("success");
    const events = await readEvents(other.url, runId);
    expect(events.find((e) => e.type === "approval.answered")).toMatchObject({
      by: "bob",
      comment: "from the other replica",
    });
    // Measured for the record: the fleet message wakes the wait, not its 2 s re-read.
    console.info(`approval answered on the other replica: run ended ${Date.now() - asked} ms later`);
  });
});
