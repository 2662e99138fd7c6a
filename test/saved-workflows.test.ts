import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

const greet = (word: string) => `name: greet
vars:
  WHO: world
steps:
  - name: hello
    action: cmd.run
    args:
      cmd: echo ${word} $WHO
`;

interface RunRecordView {
  run_id: string;
  status: string;
  trigger: string;
  trigger_ref: string | null;
  saved_workflow: string | null;
  saved_version: number | null;
  vars: Record<string, string>;
}

describe("saved workflows through the CLI and the API", () => {
  let server: TestServer;
  let runner: Proc;
  let tokenA: string;
  let tokenB: string;

  const cli = (args: string[], token = tokenA) =>
    runCli([...args, "--server", server.url, "--token", token], { cwd: tempDir() });

  beforeAll(async () => {
    server = await startTestServer();
    runner = await startRunner(server.url, await runnerToken(server.url), { id: "saved-1" });
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
    // Tenant A's runs need a runner of tenant A or a shared one.
    await runner.kill();
    const shared = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "runner of A",
      tenant_id: "A",
    });
    runner = await startRunner(server.url, shared.body.token, { id: "saved-a" });
  }, 60_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("saves versions, lists and shows them, runs one by name and records the version on the run", async () => {
    const file = writeWorkflow(greet("hello"));
    const first = await cli(["workflow", "save", file, "--name", "greet"]);
    expect(first.stderr).toBe("");
    expect(first.stdout).toContain("saved workflow greet version 1");
    writeWorkflow(greet("bonjour"), file.replace(/\/flow\.yaml$/, ""));
    const second = await cli(["workflow", "save", file, "--name", "greet"]);
    expect(second.stdout).toContain("saved workflow greet version 2");

    const list = await cli(["workflow", "list"]);
    expect(list.stdout).toMatch(/greet\s+2\s+2/);
    const shown = await cli(["workflow", "show", "greet", "--version", "1"]);
    expect(shown.stdout).toContain("version 1 (newest: 2)");
    expect(shown.stdout).toContain("echo hello $WHO");

    const ran = await cli(["workflow", "run", "greet", "--var", "WHO=team", "--follow"]);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain("bonjour team");
    const runId = /run (run_\S+) of greet version 2/.exec(ran.stderr)?.[1];
    expect(runId).toBeDefined();
    const { body: run } = await api<RunRecordView>(
      server.url,
      "GET",
      `/api/runs/${runId}`,
      undefined,
      tokenA,
    );
    expect(run).toMatchObject({
      trigger: "manual",
      saved_workflow: "greet",
      saved_version: 2,
      status: "success",
    });
    const show = await cli(["runs", "show", runId ?? ""]);
    expect(show.stdout).toContain("trigger: manual, saved workflow greet version 2");
  });

  it("answers POST /api/workflows/:name/runs like POST /api/runs, recording the trigger api", async () => {
    await api(server.url, "POST", "/api/workflows", { name: "api-greet", workflow: greet("hi") }, tokenA);
    const { status, body } = await api<{ run_id: string; status: string; saved_version: number }>(
      server.url,
      "POST",
      "/api/workflows/api-greet/runs",
      { vars: { WHO: "robots" } },
      tokenA,
    );
    expect(status).toBe(201);
    expect(body).toMatchObject({ status: "queued", saved_version: 1 });
    const done = (await waitForRun(server.url, body.run_id, isFinal)) as unknown as RunRecordView;
    expect(done).toMatchObject({ status: "success", trigger: "api", saved_workflow: "api-greet" });
    const listed = await cli(["runs", "list"]);
    expect(listed.stdout).toMatch(new RegExp(`${body.run_id}\\s+success\\s+greet\\s+api`));
  });

  it("refuses a run by name whose variables do not fit the workflow's declared inputs, starting nothing", async () => {
    const typed =
      'name: typed\ninputs:\n  HOOK_PR: {type: integer}\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: "echo $HOOK_PR"}}\n';
    await api(
      server.url,
      "POST",
      "/api/workflows",
      { name: "typed-run", file: "typed.yaml", workflow: typed },
      tokenA,
    );
    const refused = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/workflows/typed-run/runs",
      { vars: { HOOK_PR: "12; rm -rf /" } },
      tokenA,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({
      code: "INVALID_INPUT",
      message: "vars: HOOK_PR is not an integer",
    });
    expect(refused.body.error.hint).toBe(
      "typed.yaml declares HOOK_PR in inputs: as integer; give a value that fits.",
    );
    const fits = await api(
      server.url,
      "POST",
      "/api/workflows/typed-run/runs",
      { vars: { HOOK_PR: "12" } },
      tokenA,
    );
    expect(fits.status).toBe(201);
  });

  it("refuses a run by name whose vars set a setting the workflow does not declare (BASH_ENV from whoever runs it), starting nothing", async () => {
    // Whoever runs a saved workflow by name (a teammate too) gives its vars; the run is shown as
    // written by the workflow's author, so a BASH_ENV among them would run their code as its.
    const deploy =
      'name: deploy\nvars:\n  AWS_REGION: eu-west-1\nsteps:\n  - {name: a, action: shell.run, args: {script: "echo region=$AWS_REGION"}}\n';
    await api(
      server.url,
      "POST",
      "/api/workflows",
      { name: "deploy-vars", file: "deploy.yaml", workflow: deploy },
      tokenA,
    );
    const before = (
      await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=500", undefined, tokenA)
    ).body.runs.length;
    const refused = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/workflows/deploy-vars/runs",
      { vars: { BASH_ENV: "$(id >&2)", WHO: "x" } },
      tokenA,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("INVALID_INPUT");
    expect(refused.body.error.message).toMatch(/^vars: BASH_ENV is a name programs read as a setting/);
    expect(refused.body.error.hint).toContain("deploy.yaml");
    const after = (
      await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=500", undefined, tokenA)
    ).body.runs.length;
    expect(after).toBe(before);
    // A setting the workflow declares in its vars: is its author's choice to take from outside.
    const declared = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/workflows/deploy-vars/runs",
      { vars: { AWS_REGION: "us-east-2" } },
      tokenA,
    );
    expect(declared.status).toBe(201);
    const done = await waitForRun(server.url, declared.body.run_id, isFinal);
    expect(done.status).toBe("success");
  });

  it("hides a tenant's saved workflows from another tenant's members (404, never 403)", async () => {
    await api(server.url, "POST", "/api/workflows", { name: "secret-plan", workflow: greet("x") }, tokenA);
    for (const [method, path, body] of [
      ["GET", "/api/workflows/secret-plan", undefined],
      ["POST", "/api/workflows/secret-plan/runs", {}],
      ["DELETE", "/api/workflows/secret-plan", undefined],
    ] as const) {
      const answer = await api<{ error: { code: string } }>(server.url, method, path, body, tokenB);
      expect([method, path, answer.status]).toEqual([method, path, 404]);
    }
    const { body } = await api<{ workflows: Array<{ name: string }> }>(
      server.url,
      "GET",
      "/api/workflows",
      undefined,
      tokenB,
    );
    expect(body.workflows).toEqual([]);
    const run = await cli(["workflow", "run", "secret-plan"], tokenB);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("no saved workflow named secret-plan");
    // Tenant A still has it.
    expect((await api(server.url, "GET", "/api/workflows/secret-plan", undefined, tokenA)).status).toBe(200);
  });

  it("refuses a bad cron or time zone at line:col and a bad name with a hint, storing nothing", async () => {
    const bad = writeWorkflow(`name: nightly
schedule:
  cron: "61 * * * *"
  timezone: Europe/Berlinn
steps:
  - name: a
    action: cmd.run
    args: {cmd: "true"}
`);
    const saved = await cli(["workflow", "save", bad, "--name", "nightly"]);
    expect(saved.code).toBe(2);
    expect(saved.stderr).toMatch(
      /flow\.yaml:3:9: cron of schedule: "61 \* \* \* \*" is not a cron expression/,
    );
    expect(saved.stderr).toMatch(
      /flow\.yaml:4:13: timezone of schedule: "Europe\/Berlinn" is not a known time zone \(hint: did you mean "Europe\/Berlin"\?\)/,
    );
    expect((await api(server.url, "GET", "/api/workflows/nightly", undefined, tokenA)).status).toBe(404);
    const badName = await cli(["workflow", "save", writeWorkflow(greet("x")), "--name", "my flow!"]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('"my flow!" is not a valid saved workflow name');
    expect(badName.stderr).toContain("(e.g. my-flow-)");
    const { body } = await api<{ workflows: Array<{ name: string }> }>(
      server.url,
      "GET",
      "/api/workflows",
      undefined,
      tokenA,
    );
    expect(body.workflows.map((w) => w.name)).not.toContain("nightly");
  });

  it("removes a saved workflow, writing save, its promotion and rm to the audit log", async () => {
    await cli(["workflow", "save", writeWorkflow(greet("x")), "--name", "short-lived"]);
    const removed = await cli(["workflow", "rm", "short-lived"]);
    expect(removed.stdout).toContain("removed saved workflow short-lived");
    expect((await cli(["workflow", "show", "short-lived"])).code).toBe(2);
    const { body } = await api<{ events: Array<{ action: string; target: string; tenant_id: string }> }>(
      server.url,
      "GET",
      "/api/audit?limit=50",
      undefined,
      adminToken,
    );
    const actions = body.events.filter((e) => e.target === "short-lived").map((e) => [e.action, e.tenant_id]);
    expect(actions).toEqual([
      ["workflow.rm", "A"],
      ["workflow.promote", "A"],
      ["workflow.save", "A"],
    ]);
  });
});
