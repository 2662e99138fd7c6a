import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import type { EventOf, RunEvent } from "../src/core/events.js";
import { runCli, tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  api,
  type Proc,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/*
 * Approvals with a typed form, several approvers, no self-approval and a wait, through a real
 * server, a sandboxed runner, the API and the built CLI; and across two replicas on PostgreSQL,
 * where each approver counts once whichever replica they answer through.
 */

interface ErrorBody {
  error: { code: string; message: string; hint: string };
}
interface AnswerBody {
  decision: string;
  answered_by: string;
  approvals: number;
  required: number;
  status: string;
  inputs: Record<string, string> | null;
}
interface Approval {
  step: string;
  status: string;
  may_answer: boolean;
  required: number;
  approvals: Array<{ by: string; decision: string }>;
  values: Record<string, string> | null;
  not_before: string | null;
}

const release = (rules: string) => `name: release
steps:
  - name: go-live
    action: approval
    args:
      message: Ship it?
      approvers: [ann, bob, ada]
${rules}  - name: ship
    action: shell.run
    args:
      script: echo "shipping to $REGION with $REPLICAS replicas, canary $CANARY"
`;

const form = `      required: 2
      self_approval: false
      inputs:
        REGION: {type: choice, options: [eu, us], required: true}
        REPLICAS: {type: number, default: "3"}
        CANARY: {type: boolean, default: "false"}
`;

const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((proc) => proc.kill("SIGKILL")));
});

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
    tokens[username] = (
      await api<{ token: string }>(url, "POST", "/api/auth/login", { username, password }, "")
    ).body.token;
  }
  return tokens;
}

async function acmeRunner(url: string, id: string): Promise<void> {
  const made = await api<{ token: string }>(url, "POST", "/api/tokens", {
    kind: "runner",
    name: id,
    tenant_id: "acme",
  });
  procs.push(await startRunner(url, made.body.token, { id }));
}

async function submitAs(url: string, token: string, workflow: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(url, "POST", "/api/runs", { workflow }, token);
  expect(status, JSON.stringify(body)).toBe(201);
  return body.run_id;
}

const approve = (url: string, runId: string, token: string, body: Record<string, unknown> = {}) =>
  api<ErrorBody & AnswerBody>(url, "POST", `/api/runs/${runId}/steps/go-live/approve`, body, token);

const approvalOf = async (url: string, runId: string, token: string): Promise<Approval> =>
  (await api<{ approvals: Approval[] }>(url, "GET", `/api/runs/${runId}`, undefined, token)).body
    .approvals[0]!;

const untilWaiting = (url: string, runId: string) =>
  waitForRun(url, runId, (run) => run.steps.some((s) => s.name === "go-live" && s.status === "waiting"));

const of = <T extends RunEvent["type"]>(events: RunEvent[], type: T) =>
  events.filter((e): e is EventOf<T> => e.type === type);

describe("approvals with a form and several approvers", () => {
  it("take the form from the first approver, count each approver once, refuse the submitter, and export the values", async () => {
    const server = await startTestServer();
    procs.push(server.proc);
    const tokens = await people(server.url);
    await acmeRunner(server.url, "rules-runner-1");
    const runId = await submitAs(server.url, tokens.ann!, release(form));
    await untilWaiting(server.url, runId);
    expect((await approvalOf(server.url, runId, tokens.ann!)).may_answer).toBe(false);
    expect((await approvalOf(server.url, runId, tokens.bob!)).may_answer).toBe(true);

    // The submitter is refused, though listed; another tenant's member sees no run at all.
    const self = await approve(server.url, runId, tokens.ann!, { inputs: { REGION: "eu" } });
    expect(self.status).toBe(403);
    expect(self.body.error.message).toBe(
      `you submitted run ${runId}; step "go-live" takes no answer from its submitter (self_approval: false)`,
    );
    expect((await approve(server.url, runId, tokens.eve!, { inputs: { REGION: "eu" } })).status).toBe(404);

    // A value of the wrong type, an unknown input and a missing required one: 400, nothing stored.
    const wrong = await approve(server.url, runId, tokens.bob!, {
      inputs: { REGION: "mars", REPLICAS: "many", REGOIN: "x" },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe("INVALID_INPUT");
    expect(wrong.body.error.message).toContain('input REGION: "mars" is not one of eu, us');
    expect(wrong.body.error.message).toContain('input REPLICAS: "many" is not a number');
    expect(wrong.body.error.message).toContain('unknown input "REGOIN" (did you mean REGION?)');
    expect(wrong.body.error.hint).toBe(
      'Give the inputs as --input NAME=VALUE (API: "inputs": {...}): REGION=eu|us [REPLICAS=number] [CANARY=boolean].',
    );
    const missing = await approve(server.url, runId, tokens.bob!, {});
    expect(missing.body.error.message).toContain("input REGION is required (one of eu, us)");
    expect((await approvalOf(server.url, runId, tokens.bob!)).approvals).toEqual([]);

    const cli = (token: string, args: string[]) =>
      runCli(["runs", ...args], { env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: token } });
    const first = await cli(tokens.bob!, [
      "approve",
      runId,
      "go-live",
      "--input",
      "REGION=eu",
      "--input",
      "CANARY=true",
      "--comment",
      "eu first",
    ]);
    expect(first.stderr).toBe("");
    expect(first.stdout).toBe(
      `run ${runId}: step "go-live" approved by bob (1 of 2 approvals)\n  it waits for 1 more approval from other approvers\n  REGION=eu\n  REPLICAS=3\n  CANARY=true\n`,
    );
    const shown = await cli(tokens.ada!, ["show", runId]);
    expect(shown.stdout).toContain(
      "(1 of 2 approvals: bob; not the submitter; inputs REGION=eu REPLICAS=3 CANARY=true) until",
    );

    // An approver counts once, however they try again.
    const twice = await approve(server.url, runId, tokens.bob!);
    expect(twice.status).toBe(409);
    expect(twice.body.error.message).toMatch(
      /^you answered step "go-live" of run \S+ already \(approved at /,
    );
    expect(twice.body.error.hint).toBe(
      "Each approver counts once: it needs 1 more approval from other approvers.",
    );
    const twiceCli = await cli(tokens.bob!, ["reject", runId, "go-live"]);
    expect(twiceCli.code).not.toBe(0);
    expect(twiceCli.stderr).toContain('you answered step "go-live"');

    // Later approvers approve the first one's values; other values are refused.
    const other = await approve(server.url, runId, tokens.ada!, { inputs: { REGION: "us" } });
    expect(other.status).toBe(409);
    expect(other.body.error.message).toContain("was filled in by bob: REGION=eu; you gave other values");
    const second = await approve(server.url, runId, tokens.ada!, { comment: "agreed" });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body).toMatchObject({
      approvals: 2,
      required: 2,
      status: "approved",
      inputs: { REGION: "eu", REPLICAS: "3", CANARY: "true" },
    });

    const done = await waitForRun(server.url, runId, (run) => run.status !== "running");
    expect(done.status).toBe("success");
    expect(done.vars).toMatchObject({ REGION: "eu", REPLICAS: "3", CANARY: "true" });
    const events = await readEvents(server.url, runId);
    const output = of(events, "step.output")
      .map((e) => e.data)
      .join("");
    expect(output).toContain("shipping to eu with 3 replicas, canary true");
    expect(of(events, "approval.vote").map((e) => [e.by, e.decision, e.approvals, e.required])).toEqual([
      ["bob", "approved", 1, 2],
      ["ada", "approved", 2, 2],
    ]);
    expect(of(events, "approval.answered")[0]).toMatchObject({
      decision: "approved",
      by: "ada",
      approved_by: ["bob", "ada"],
      inputs: { REGION: "eu", REPLICAS: "3", CANARY: "true" },
    });
    expect(of(events, "step.waiting")[0]).toMatchObject({ required: 2, self_approval: false });

    const audit = await api<{
      events: Array<{ target: string; outcome: string; actor: { username: string }; details: unknown }>;
    }>(server.url, "GET", "/api/audit?action=run.approve");
    const mine = audit.body.events.filter((e) => e.target === runId);
    expect(mine.map((e) => [e.actor.username, e.outcome, e.details])).toEqual(
      expect.arrayContaining([
        ["ann", "denied", { step: "go-live", reason: "self_approval" }],
        [
          "bob",
          "ok",
          {
            step: "go-live",
            comment: "eu first",
            inputs: { REGION: "eu", REPLICAS: "3", CANARY: "true" },
            approvals: 1,
            required: 2,
          },
        ],
        [
          "ada",
          "ok",
          {
            step: "go-live",
            comment: "agreed",
            inputs: { REGION: "eu", REPLICAS: "3", CANARY: "true" },
            approvals: 2,
            required: 2,
          },
        ],
      ]),
    );
  }, 120_000);

  it("take no answer before the wait has passed, and one rejection rejects", async () => {
    const server = await startTestServer();
    procs.push(server.proc);
    const tokens = await people(server.url);
    await acmeRunner(server.url, "rules-runner-2");
    const runId = await submitAs(server.url, tokens.ann!, release("      required: 2\n      wait: 3s\n"));
    await untilWaiting(server.url, runId);
    const early = await approve(server.url, runId, tokens.bob!);
    expect(early.status).toBe(409);
    expect(early.body.error.message).toMatch(/step "go-live" of run \S+ takes answers from \S+ \(in \d s\)/);
    const { not_before: notBefore } = await approvalOf(server.url, runId, tokens.bob!);
    expect(notBefore).not.toBeNull();
    // The wait is the feature under test: answer once its time has come.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, Date.parse(notBefore!) - Date.now()) + 50),
    );
    expect((await approve(server.url, runId, tokens.bob!)).body).toMatchObject({
      status: "waiting",
      approvals: 1,
    });
    const rejected = await api<AnswerBody>(
      server.url,
      "POST",
      `/api/runs/${runId}/steps/go-live/reject`,
      { comment: "no" },
      tokens.ada!,
    );
    expect(rejected.body).toMatchObject({ status: "rejected", decision: "rejected" });
    const done = await waitForRun(server.url, runId, (run) => run.status !== "running");
    expect(done.status).toBe("failed");
    expect(done.error?.code).toBe("APPROVAL_REJECTED");
  }, 120_000);
});

describe("an approval with one of two votes outlives its server", () => {
  it("counts the vote once after the server is killed -9 and started again, and the second approver completes it", async () => {
    const home = tempDir();
    const first = await startTestServer(home);
    procs.push(first.proc);
    const tokens = await people(first.url);
    await acmeRunner(first.url, "rules-restart-runner");
    const runId = await submitAs(first.url, tokens.ann!, release(form));
    await untilWaiting(first.url, runId);
    const one = await approve(first.url, runId, tokens.bob!, { inputs: { REGION: "us" } });
    expect(one.status, JSON.stringify(one.body)).toBe(200);
    expect(one.body).toMatchObject({ approvals: 1, required: 2, status: "waiting" });
    const port = Number(new URL(first.url).port);
    await first.proc.kill("SIGKILL");

    const server = await startTestServer(home, {}, port);
    procs.push(server.proc);
    const kept = await approvalOf(server.url, runId, tokens.ada!);
    expect(kept).toMatchObject({ status: "waiting", may_answer: true });
    expect(kept.approvals.map((v) => [v.by, v.decision])).toEqual([["bob", "approved"]]);
    // bob's vote was stored: answering again after the restart is refused, not counted twice.
    expect((await approve(server.url, runId, tokens.bob!)).status).toBe(409);
    const second = await approve(server.url, runId, tokens.ada!);
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body).toMatchObject({ approvals: 2, required: 2, status: "approved" });

    const done = await waitForRun(server.url, runId, (run) => run.status !== "running", 60_000);
    expect(done.status).toBe("success");
    expect(done.vars).toMatchObject({ REGION: "us", REPLICAS: "3", CANARY: "false" });
    const events = await readEvents(server.url, runId);
    expect(of(events, "approval.vote").map((e) => [e.by, e.approvals])).toEqual([
      ["bob", 1],
      ["ada", 2],
    ]);
    expect(events.filter((e) => e.type === "step.waiting")).toHaveLength(1);
    expect(events.filter((e) => e.type === "run.finished")).toHaveLength(1);
    const output = of(events, "step.output")
      .map((e) => e.data)
      .join("");
    expect(output).toContain("shipping to us with 3 replicas, canary false");
  }, 120_000);
});

describe("approvals with several approvers across two replicas (PostgreSQL)", () => {
  const adminUrl = inject("postgresAdminUrl");
  const env = (databaseUrl: string) => ({
    RUNYARD_DATABASE_URL: databaseUrl,
    RUNYARD_SECRET_KEY: "approval-test-secret-key-0123456789abcdef",
    // No replica is killed here: the default lease, so a loaded machine's slow heartbeat fences none.
    RUNYARD_REPLICA_HEARTBEAT_MS: "300",
  });

  it("count an approver once whichever replica they answer through", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    // The replicas start at once: either may lead, and the run is the carrier's whichever does.
    const [carrier, other] = await Promise.all([
      startTestServer(tempDir(), env(databaseUrl)),
      startTestServer(tempDir(), env(databaseUrl)),
    ]);
    procs.push(carrier.proc, other.proc);
    const tokens = await people(carrier.url);
    await acmeRunner(carrier.url, "rules-replica-runner");
    const runId = await submitAs(carrier.url, tokens.ann!, release(form));
    await untilWaiting(carrier.url, runId);

    // bob answers through both replicas at once: one answer counts, the other is refused.
    const [a, b] = await Promise.all([
      approve(carrier.url, runId, tokens.bob!, { inputs: { REGION: "us" } }),
      approve(other.url, runId, tokens.bob!, { inputs: { REGION: "us" } }),
    ]).catch((error: unknown) => {
      // A replica that went away says why in its output.
      throw new Error(`${String(error)}\ncarrier:\n${carrier.proc.output()}\nother:\n${other.proc.output()}`);
    });
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    expect((await approvalOf(other.url, runId, tokens.ada!)).approvals.map((v) => v.by)).toEqual(["bob"]);
    expect((await approve(other.url, runId, tokens.ada!)).body).toMatchObject({
      status: "approved",
      approvals: 2,
    });
    const done = await waitForRun(other.url, runId, (run) => run.status !== "running");
    expect(done.status).toBe("success");
    expect(done.vars).toMatchObject({ REGION: "us", REPLICAS: "3" });
    const events = await readEvents(other.url, runId);
    expect(of(events, "approval.vote").map((e) => e.by)).toEqual(["bob", "ada"]);
  }, 120_000);
});

describe("approvals attacked by their own submitter", () => {
  let approvalServer: TestServer;
  let approvalRunner: Proc | undefined;
  const people: Record<string, string> = {};

  beforeAll(async () => {
    approvalServer = await startTestServer();
    for (const username of ["ann", "bob"]) {
      const password = `${username}-password-123`;
      const made = await api(approvalServer.url, "POST", "/api/users", {
        username,
        role: "member",
        tenant_id: "acme",
        password,
      });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      const login = await api<{ token: string }>(
        approvalServer.url,
        "POST",
        "/api/auth/login",
        { username, password },
        "",
      );
      people[username] = login.body.token;
    }
    const runnerToken = await api<{ token: string }>(approvalServer.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "acme approvals runner",
      tenant_id: "acme",
    });
    approvalRunner = await startRunner(approvalServer.url, runnerToken.body.token, {
      id: `approvals-self-${process.pid}`,
    });
  }, 120_000);

  afterAll(async () => {
    await approvalRunner?.kill("SIGKILL");
    await approvalServer?.proc.kill("SIGKILL");
  }, 60_000);

  it("revoking the token that submitted a run does not let its submitter approve it past self_approval: false", async () => {
    const url = approvalServer.url;
    // Ann makes a personal token, submits with it, then revokes it and answers from her session.
    const personal = await api<{ id: string; token: string }>(
      url,
      "POST",
      "/api/tokens",
      { kind: "user" },
      people.ann ?? "",
    );
    expect(personal.status, JSON.stringify(personal.body)).toBe(201);
    const workflow = `name: release
steps:
  - name: go-live
    action: approval
    args:
      message: Ship it?
      approvers: [ann, bob]
      self_approval: false
  - name: ship
    action: shell.run
    args:
      script: echo shipped
`;
    const submitted = await api<{ run_id: string }>(
      url,
      "POST",
      "/api/runs",
      { workflow },
      personal.body.token,
    );
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const runId = submitted.body.run_id;
    await waitForRun(
      url,
      runId,
      (now) => now.steps.some((s) => s.name === "go-live" && s.status === "waiting"),
      90_000,
    );
    const revoked = await api(url, "DELETE", `/api/tokens/${personal.body.id}`, undefined, people.ann ?? "");
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);

    const approve = (token: string) =>
      api<{ error?: { code: string; message: string } }>(
        url,
        "POST",
        `/api/runs/${runId}/steps/go-live/approve`,
        {},
        token,
      );
    const self = await approve(people.ann ?? "");
    expect(self.status, JSON.stringify(self.body)).toBe(403);
    expect(self.body.error?.message).toContain("takes no answer from its submitter");
    // Another approver still may.
    const other = await approve(people.bob ?? "");
    expect(other.status, JSON.stringify(other.body)).toBe(200);
    const done = await waitForRun(url, runId, (now) => now.status === "success", 90_000);
    expect(done.status).toBe("success");
  }, 180_000);
});
