// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../src/server/server.js";
import { adminToken, injectJson, makeToken, startInProcessServer } from "./helpers/in-process.js";

const workflow = `name: release
steps:
  - name: build
    action: shell.run
    args: {script: 'echo "ARTIFACT=app-7" >> "$RUNYARD_OUTPUT"'}
  - name: test
    action: shell.run
    args: {script: 'echo "testing \${ARTIFACT}"'}
`;

let server: RunningServer;
const tokens: Record<"memberA" | "teammateA" | "adminA" | "memberB", string> = {
  memberA: "",
  teammateA: "",
  adminA: "",
  memberB: "",
};

async function call(method: string, url: string, token: string, body?: unknown) {
  return injectJson(server.app, method, url, { token, ...(body !== undefined ? { body } : {}) });
}

/** A failed run of `token`'s (no runner takes runs here: its end is written as a runner's would be). */
async function failedRun(token: string): Promise<string> {
  const submitted = await call("POST", "/api/runs", token, { workflow });
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  await server.store.runs.update(submitted.body.run_id, { status: "failed" });
  return submitted.body.run_id;
}

async function runCount(): Promise<number> {
  return (await server.store.runs.list({ limit: 500 })).runs.length;
}

beforeAll(async () => {
  server = await startInProcessServer();
  tokens.memberA = await makeToken(server, "user", { tenant_id: "A" });
  tokens.teammateA = await makeToken(server, "user", { tenant_id: "A" });
  tokens.adminA = await makeToken(server, "admin", { tenant_id: "A" });
  tokens.memberB = await makeToken(server, "user", { tenant_id: "B" });
});

afterAll(async () => {
  await server.close();
});

describe("who may retry a run", () => {
  it("hides a run of another tenant: its retry, run-step and page are 404, and nothing is stored", async () => {
    const runA = await failedRun(tokens.memberA);
    const before = await runCount();
    for (const [url, body] of [
      [`/api/runs/${runA}/retry`, {}],
      [`/api/runs/${runA}/retry`, { from: "test", workflow }],
      [`/api/runs/${runA}/run-step`, { step: "test" }],
    ] as const) {
      const answer = await call("POST", url, tokens.memberB, body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(404);
      expect(answer.body.error.message).toBe(`run ${runA} does not exist`);
    }
    expect((await call("GET", `/api/runs/${runA}`, tokens.memberB)).status).toBe(404);
    // A run outside any tenant (the platform admin's) is hidden from a tenant's member the same way.
    const platformRun = await failedRun(adminToken);
    const outside = await call("POST", `/api/runs/${platformRun}/retry`, tokens.memberA, {});
    expect(outside.status).toBe(404);
    expect(await runCount()).toBe(before + 1);
  });

  it("lets a teammate retry a run unchanged, as its own run of the author's text, in the run's tenant", async () => {
    const runA = await failedRun(tokens.memberA);
    const answer = await call("POST", `/api/runs/${runA}/retry`, tokens.teammateA, {});
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(answer.body).toMatchObject({ retry_of: runA, from: "build", kept: [] });
    const retry = (await call("GET", `/api/runs/${answer.body.run_id}`, tokens.teammateA)).body;
    const first = (await call("GET", `/api/runs/${runA}`, tokens.memberA)).body;
    expect(retry).toMatchObject({
      tenant_id: "A",
      retry_of: runA,
      retry_from: "build",
      trigger: "rerun",
      authored_by: first.created_by,
    });
    expect(retry.created_by).not.toBe(first.created_by);
    expect(first.retries).toEqual([
      expect.objectContaining({ run_id: answer.body.run_id, from: "build", status: "queued" }),
    ]);
  });

  it("refuses a teammate's retry with an edited workflow or vars (403), and takes the submitter's and a tenant admin's", async () => {
    const runA = await failedRun(tokens.memberA);
    const before = await runCount();
    for (const body of [{ workflow }, { vars: { ARTIFACT: "evil" } }]) {
      const answer = await call("POST", `/api/runs/${runA}/retry`, tokens.teammateA, body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(403);
      expect(answer.body.error).toMatchObject({ code: "FORBIDDEN" });
      expect(answer.body.error.message).toContain("only whoever submitted");
      expect(answer.body.error.hint).toContain("Retry it unchanged");
    }
    expect(await runCount()).toBe(before);
    // Nor may the teammate read the text to edit it; the submitter and a tenant admin may.
    const text = await call("GET", `/api/runs/${runA}/workflow`, tokens.teammateA);
    expect(text.status).toBe(403);
    expect(text.body.workflow).toBeUndefined();
    for (const token of [tokens.memberA, tokens.adminA])
      expect((await call("GET", `/api/runs/${runA}/workflow`, token)).body).toEqual({
        workflow,
        file: "workflow.yaml",
      });
    for (const token of [tokens.memberA, tokens.adminA]) {
      const answer = await call("POST", `/api/runs/${runA}/retry`, token, {
        workflow,
        vars: { ARTIFACT: "x" },
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      const retry = (await call("GET", `/api/runs/${answer.body.run_id}`, token)).body;
      // An edited text is the caller's: the run is written by them.
      expect(retry.authored_by).toBe(retry.created_by);
    }
  });

  it("still takes the submitter's edited retry after they revoke the token that submitted the run", async () => {
    const made = await call("POST", "/api/users", adminToken, {
      username: "ann",
      role: "member",
      tenant_id: "A",
      password: "ann-password-123",
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const session = (
      await injectJson(server.app, "POST", "/api/auth/login", {
        body: { username: "ann", password: "ann-password-123" },
      })
    ).body.token as string;
    const laptop = await call("POST", "/api/tokens", session, { kind: "user", name: "laptop" });
    expect(laptop.status, JSON.stringify(laptop.body)).toBe(201);
    const runA = await failedRun(laptop.body.token);
    expect((await call("DELETE", `/api/tokens/${laptop.body.id}`, session)).status).toBe(200);
    // Its page still says whose run it is.
    expect((await call("GET", `/api/runs/${runA}`, session)).body.created_by_name).toBe("ann");
    expect((await call("GET", `/api/runs/${runA}/workflow`, session)).body).toEqual({
      workflow,
      file: "workflow.yaml",
    });
    const retried = await call("POST", `/api/runs/${runA}/retry`, session, { workflow });
    expect(retried.status, JSON.stringify(retried.body)).toBe(201);
    // Still only ann's: a teammate is refused as before.
    expect((await call("GET", `/api/runs/${runA}/workflow`, tokens.teammateA)).status).toBe(403);
  });

  it("refuses a run still queued, a step the run does not have, and bad variable names, storing nothing", async () => {
    const queued = (await call("POST", "/api/runs", tokens.memberA, { workflow })).body.run_id;
    const runA = await failedRun(tokens.memberA);
    const before = await runCount();
    const busy = await call("POST", `/api/runs/${queued}/retry`, tokens.memberA, {});
    expect(busy.status).toBe(409);
    expect(busy.body.error.message).toBe(`run ${queued} is queued: only a finished run is retried`);
    expect(busy.body.error.hint).toContain(`runyard runs cancel ${queued}`);
    const unknown = await call("POST", `/api/runs/${runA}/retry`, tokens.memberA, { from: "tests" });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toBe(`run ${runA} has no step "tests"`);
    expect(unknown.body.error.hint).toBe('did you mean "test"? Steps of this run: build, test.');
    const oneStep = await call("POST", `/api/runs/${runA}/run-step`, tokens.memberA, { step: "deploy" });
    expect(oneStep.status).toBe(400);
    expect(oneStep.body.error.hint).toBe("Steps of this run: build, test.");
    const badVar = await call("POST", `/api/runs/${runA}/retry`, tokens.memberA, { vars: { "A-B": "1" } });
    expect(badVar.status).toBe(400);
    expect(badVar.body.error.message).toContain("is not a valid variable name");
    expect(await runCount()).toBe(before);
  });
});
