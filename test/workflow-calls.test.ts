// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

interface CallRunView {
  run_id: string;
  status: string;
  trigger: string;
  trigger_ref: string | null;
  parent_run_id: string | null;
  parent_step: string | null;
  saved_workflow: string | null;
  saved_version: number | null;
  started_at: string | null;
  finished_at: string | null;
  vars: Record<string, string>;
  steps: Array<{ name: string; status: string; error?: { code: string; message: string } }>;
  error: { code: string; message: string } | null;
  calls?: Array<{
    step: string;
    run_id: string;
    workflow: string;
    status: string;
    steps: Array<{ name: string }>;
  }>;
  graph?: { steps: Array<{ name: string; call: string | null }> };
}

interface Refusal {
  error: { code: string; message: string; hint?: string };
}

const deploy = `name: deploy
inputs:
  INPUT_ENV: {type: choice, options: [staging, production], required: true}
  INPUT_COUNT: {type: number, default: "1"}
  INPUT_DRY: {type: boolean, default: "false"}
outputs:
  URL: "https://\${INPUT_ENV}.example/\${BUILD}"
  COUNT: "\${INPUT_COUNT}"
steps:
  - name: build
    action: shell.run
    args:
      export_vars: true
      script: |
        echo "deploying $INPUT_ENV x$INPUT_COUNT"
        echo "BOPS_EXPORT:BUILD=b42"
  - name: check
    action: cmd.run
    args: {cmd: "test \\"$INPUT_DRY\\" = false"}
`;

const caller = (inputs: string, after = "") => `name: release
vars: {TARGET: staging}
steps:
  - name: ship
    action: workflow.call
    args:
      workflow: deploy
      inputs:
${inputs}
  - name: announce
    action: shell.run
    args:
      export_vars: true
      script: |
        echo "BOPS_EXPORT:SEEN=$URL/$COUNT"
${after}`;

describe("workflow.call: saved workflows as steps", () => {
  let server: TestServer;
  let runner: Proc;
  let tokenA: string;
  let tokenB: string;

  const save = async (name: string, workflow: string, token = tokenA) => {
    const saved = await api(server.url, "POST", "/api/workflows", { name, workflow }, token);
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
  };
  const submit = (workflow: string, token = tokenA) =>
    api<{ run_id: string } & Refusal>(server.url, "POST", "/api/runs", { kind: "workflow", workflow }, token);
  const view = async (id: string) => (await api<CallRunView>(server.url, "GET", `/api/runs/${id}`)).body;
  const ended = (id: string) =>
    waitForRun(server.url, id, isFinal, 90_000) as Promise<unknown> as Promise<CallRunView>;

  beforeAll(async () => {
    server = await startTestServer();
    const make = async (tenant: string) =>
      (
        await api<{ token: string }>(server.url, "POST", "/api/tokens", {
          kind: "user",
          name: `member of ${tenant}`,
          tenant_id: tenant,
        })
      ).body.token;
    tokenA = await make("A");
    tokenB = await make("B");
    const runnerOfA = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "runner of A",
      tenant_id: "A",
    });
    runner = await startRunner(server.url, runnerOfA.body.token, { id: "calls-a", capacity: 4 });
    await save("deploy", deploy);
  }, 60_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("runs the saved workflow as a child run linked both ways, and its outputs become the step's exports; a run that begins with a call starts with it", async () => {
    const submitted = await submit(caller("        INPUT_ENV: ${TARGET}\n        INPUT_COUNT: 3"));
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const parent = await ended(submitted.body.run_id);
    expect(parent.status).toBe("success");
    expect(parent.vars).toMatchObject({
      URL: "https://staging.example/b42",
      COUNT: "3",
      SEEN: "https://staging.example/b42/3",
    });
    const events = await readEvents(server.url, parent.run_id);
    const called = events.find(
      (e): e is Extract<RunEvent, { type: "step.called" }> => e.type === "step.called",
    );
    expect(called).toMatchObject({ step: "ship", workflow: "deploy", version: 1 });
    // A run whose first step is a call starts as the call begins (no runner takes it up): its
    // duration covers the call's.
    expect(events.map((e) => e.type).slice(0, 3)).toEqual(["run.queued", "run.started", "step.started"]);
    expect(events.find((e) => e.type === "run.started")).toMatchObject({ runner_id: "server" });
    expect(parent.started_at).not.toBeNull();
    expect(Date.parse(parent.started_at!)).toBeLessThanOrEqual(Date.parse(called!.ts));
    const child = await view(called!.child_run_id);
    expect(child).toMatchObject({
      status: "success",
      trigger: "call",
      trigger_ref: parent.run_id,
      parent_run_id: parent.run_id,
      parent_step: "ship",
      saved_workflow: "deploy",
      saved_version: 1,
    });
    const shown = await view(parent.run_id);
    expect(shown.calls).toEqual([
      expect.objectContaining({ step: "ship", run_id: child.run_id, workflow: "deploy", status: "success" }),
    ]);
    expect(shown.calls?.[0]?.steps.map((s) => s.name)).toEqual(["build", "check"]);
    expect(shown.graph?.steps.find((s) => s.name === "ship")?.call).toBe("deploy");
  }, 120_000);

  it("starts a run whose first step is a call named with parentheses, as a matrix combination is", async () => {
    const submitted = await submit(`name: paren
steps:
  - name: ship (prod)
    action: workflow.call
    args:
      workflow: deploy
      inputs: {INPUT_ENV: staging}
`);
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const run = await ended(submitted.body.run_id);
    expect(run.status).toBe("success");
    const events = await readEvents(server.url, run.run_id);
    expect(events.map((e) => e.type).slice(0, 3)).toEqual(["run.queued", "run.started", "step.started"]);
    expect(run.started_at).not.toBeNull();
  }, 120_000);

  it("refuses at submit, at the line and column of the value, an input of the wrong type, one not declared and a required one not given; nothing is stored", async () => {
    const before = (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=500")).body.runs
      .length;
    const wrong = await submit(
      caller("        INPUT_ENV: qa\n        INPUT_COUNT: many\n        INPUT_COLOR: red"),
    );
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe("WORKFLOW_INVALID");
    expect(wrong.body.error.message).toContain(
      'workflow.yaml:9:20: step "ship": input INPUT_ENV of deploy is not one of its options (staging, production)',
    );
    expect(wrong.body.error.message).toContain(
      'workflow.yaml:10:22: step "ship": input INPUT_COUNT of deploy is not a number',
    );
    expect(wrong.body.error.message).toContain(
      'workflow.yaml:11:22: step "ship": deploy v1 declares no input INPUT_COLOR',
    );
    const missing = await submit(caller("        INPUT_COUNT: 2"));
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toMatch(
      /workflow\.yaml:7:17: step "ship": deploy requires input INPUT_ENV/,
    );
    const after = (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=500")).body.runs.length;
    expect(after).toBe(before);
  });

  it("refuses a cycle of calls and a chain deeper than 8 at submit", async () => {
    const calling = (name: string, next: string) =>
      `name: ${name}\nsteps:\n  - name: next\n    action: workflow.call\n    args: {workflow: ${next}}\n`;
    await save("loop-a", calling("loop-a", "loop-b"));
    await save("loop-b", calling("loop-b", "loop-a"));
    const cycle = await submit(calling("start", "loop-a"));
    expect(cycle.status).toBe(400);
    expect(cycle.body.error.message).toContain("workflow.yaml:5:22:");
    expect(cycle.body.error.message).toContain("a cycle");
    expect(cycle.body.error.message).toContain("loop-a -> loop-b -> loop-a");

    const leaf = `name: leaf\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: "true"}}\n`;
    await save("depth-9", leaf);
    for (let level = 8; level >= 1; level--)
      await save(`depth-${level}`, calling(`depth-${level}`, `depth-${level + 1}`));
    const deep = await submit(calling("start", "depth-1"));
    expect(deep.status).toBe(400);
    expect(deep.body.error.message).toContain("calls nest 8 deep at most");
    // Eight deep is allowed.
    const eight = await submit(calling("start", "depth-2"));
    expect(eight.status, JSON.stringify(eight.body)).toBe(201);
    const done = await ended(eight.body.run_id);
    expect(done.status).toBe("success");
  }, 180_000);

  it("a member calls only workflows of their tenant or the platform's: another tenant's is not found", async () => {
    await save(
      "b-only",
      `name: b-only\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: "true"}}\n`,
      tokenB,
    );
    const refused = await submit(
      `name: sneaky\nsteps:\n  - name: steal\n    action: workflow.call\n    args: {workflow: b-only}\n`,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain(
      'workflow.yaml:5:22: step "steal" calls b-only, which is no saved workflow of this tenant or the platform',
    );
    // The platform's (saved outside any tenant) is callable, and its child is the member's tenant's.
    await save(
      "platform-hello",
      `name: platform-hello\nsteps:\n  - {name: hi, action: cmd.run, args: {cmd: "echo hi"}}\n`,
      adminToken,
    );
    const ok = await submit(
      `name: uses-platform\nsteps:\n  - name: hi\n    action: workflow.call\n    args: {workflow: platform-hello}\n`,
    );
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const parent = await ended(ok.body.run_id);
    expect(parent.status).toBe("success");
    const childId = (await view(parent.run_id)).calls?.[0]?.run_id;
    const asB = await api(server.url, "GET", `/api/runs/${childId}`, undefined, tokenB);
    expect(asB.status).toBe(404);
    const asA = await api<CallRunView>(server.url, "GET", `/api/runs/${childId}`, undefined, tokenA);
    expect(asA.body.parent_run_id).toBe(parent.run_id);
  }, 120_000);

  it("the child runs with the lesser rights of its caller and its author: a platform admin's workflow working in /root runs as the member's and is refused", async () => {
    await save(
      "admin-folder",
      `name: admin-folder\nsteps:\n  - {name: look, action: cmd.run, args: {cmd: "ls", cwd: /root}}\n`,
      adminToken,
    );
    const run = await submit(
      `name: borrow\nsteps:\n  - name: go\n    action: workflow.call\n    args: {workflow: admin-folder}\n`,
    );
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    const parent = await ended(run.body.run_id);
    expect(parent.status).toBe("failed");
    expect(parent.steps[0]?.error?.code).toBe("STEP_CWD_NOT_ALLOWED");
    expect(
      await api<{ runs: CallRunView[] }>(server.url, "GET", "/api/runs?limit=500").then((r) =>
        r.body.runs.filter((x) => x.parent_run_id === parent.run_id),
      ),
    ).toEqual([]);
  }, 120_000);

  it("a child that fails fails the step, naming the child run and its failed step", async () => {
    const run = await submit(caller("        INPUT_ENV: production\n        INPUT_DRY: true"));
    const parent = await ended(run.body.run_id);
    expect(parent.status).toBe("failed");
    const ship = parent.steps.find((s) => s.name === "ship");
    expect(ship?.status).toBe("failed");
    expect(ship?.error?.code).toBe("CALL_FAILED");
    expect(ship?.error?.message).toMatch(/^run \S+ of deploy v1 ended failed at step "check": STEP_FAILED/);
    expect(parent.steps.find((s) => s.name === "announce")?.status).toBe("skipped");
  }, 120_000);

  it("canceling the calling run cancels its child", async () => {
    await save("slow", `name: slow\nsteps:\n  - {name: wait, action: cmd.run, args: {cmd: "sleep 60"}}\n`);
    const run = await submit(
      `name: waits\nsteps:\n  - name: s\n    action: workflow.call\n    args: {workflow: slow}\n`,
    );
    const id = run.body.run_id;
    const started = await waitForRun(
      server.url,
      id,
      (r) => ((r as unknown as CallRunView).calls?.[0]?.steps ?? []).some((s) => s.name === "wait"),
      60_000,
    );
    const childId = (started as unknown as CallRunView).calls?.[0]?.run_id as string;
    await waitForRun(server.url, childId, (r) => r.steps.some((s) => s.status === "running"), 60_000);
    await api(server.url, "POST", `/api/runs/${id}/cancel`);
    const parent = await ended(id);
    expect(parent.status).toBe("canceled");
    const child = await ended(childId);
    expect(child.status).toBe("canceled");
  }, 120_000);
});
