// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { parseEvents, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/** build exports ARTIFACT and a secret; test fails until `fixed` exists; ship exports SHIPPED. Each step notes it ran. */
function releaseFlow(dir: string): string {
  return `name: release
steps:
  - name: build
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo build >> ran
        echo "ARTIFACT=app-7" >> "$RUNYARD_OUTPUT"
        echo "DEPLOY_TOKEN=tok-secret-42" >> "$RUNYARD_OUTPUT"
  - name: test
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo test >> ran
        echo "TEST_REPORT=report-1" >> "$RUNYARD_OUTPUT"
        echo "test sees \${ARTIFACT} \${DEPLOY_TOKEN}"
        test -f fixed
  - name: ship
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo ship >> ran
        echo "SHIPPED=\${ARTIFACT} \${TEST_REPORT}" >> "$RUNYARD_OUTPUT"
`;
}

/** A graph: a -> b -> c, and lone (fails until `fixed`) -> after_lone. */
function graphFlow(dir: string): string {
  const step = (name: string, depends: string, script: string) => `  - name: ${name}
    depends: [${depends}]
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo ${name} >> ran
        ${script}
`;
  return `name: graph\nsteps:\n${step("c", "b", 'echo "c sees $FROM_A"')}${step("a", "", 'echo "FROM_A=1" >> "$RUNYARD_OUTPUT"')}${step("b", "a", "true")}${step("lone", "", "test -f fixed")}${step("after_lone", "lone", 'echo "after sees ${FROM_A:-unset}"')}`;
}

let server: TestServer;
let runner: Proc;
const cliEnv = () => ({ RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken });

function ran(dir: string): string[] {
  return readFileSync(join(dir, "ran"), "utf8").trim().split("\n");
}

function output(events: RunEvent[], step: string): string {
  return events.flatMap((e) => (e.type === "step.output" && e.step === step ? [e.data] : [])).join("");
}

async function failedRun(workflow: string): Promise<string> {
  const id = await submit(server.url, workflow);
  expect((await waitForRun(server.url, id, isFinal, 60_000)).status).toBe("failed");
  return id;
}

async function runCount(): Promise<number> {
  return (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=500")).body.runs.length;
}

beforeAll(async () => {
  server = await startTestServer(tempDir());
  runner = await startRunner(server.url, await runnerToken(server.url), { id: "retry-runner", capacity: 4 });
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
});

describe("runyard runs retry and run-step", () => {
  it("retries a failed run from the step that failed: the steps before are kept, not run again, and their exports reach the rest", async () => {
    const dir = stepDir();
    const first = await failedRun(releaseFlow(dir));
    expect(ran(dir)).toEqual(["build", "test"]);
    writeFileSync(join(dir, "fixed"), "");

    const result = await runCli(["runs", "retry", first, "--follow", "--json"], { env: cliEnv() });
    expect(result.code, result.stderr).toBe(0);
    const events = parseEvents(result.stdout);
    const retry = events[0]?.run_id ?? "";
    expect(retry).not.toBe(first);
    expect(ran(dir)).toEqual(["build", "test", "test", "ship"]);
    expect(events.find((e) => e.type === "step.finished" && e.step === "build")).toMatchObject({
      status: "success",
      kept_from: first,
    });
    expect(events.some((e) => e.type === "step.started" && e.step === "build")).toBe(false);
    // The kept secret reaches the step, and is masked as the first run masked it.
    expect(output(events, "test")).toBe("test sees app-7 ***\n");

    const view = (await api<Record<string, unknown>>(server.url, "GET", `/api/runs/${retry}`)).body;
    expect(view).toMatchObject({ status: "success", retry_of: first, retry_from: "test", trigger: "rerun" });
    expect(view.vars).toMatchObject({ ARTIFACT: "app-7", SHIPPED: "app-7 report-1", DEPLOY_TOKEN: "***" });
    expect((view.steps as { name: string; status: string }[]).map((s) => [s.name, s.status])).toEqual([
      ["build", "success"],
      ["test", "success"],
      ["ship", "success"],
    ]);
    const firstView = (await api<{ retries: unknown[] }>(server.url, "GET", `/api/runs/${first}`)).body;
    expect(firstView.retries).toEqual([
      expect.objectContaining({ run_id: retry, from: "test", status: "success" }),
    ]);

    const shown = await runCli(["runs", "show", first], { env: cliEnv() });
    expect(shown.stdout).toContain(`retried by: ${retry} from step test (success)`);
    const shownRetry = await runCli(["runs", "show", retry], { env: cliEnv() });
    expect(shownRetry.stdout).toContain(`retry of: ${first} from step test`);
    // A re-run of the retry runs the whole workflow again, keeping nothing.
    const rerun = await api<{ run_id: string }>(server.url, "POST", `/api/runs/${retry}/rerun`);
    expect((await waitForRun(server.url, rerun.body.run_id, isFinal, 60_000)).status).toBe("success");
    expect(ran(dir)).toEqual(["build", "test", "test", "ship", "build", "test", "ship"]);
  }, 120_000);

  it("retries from a chosen step, and says which steps it kept", async () => {
    const dir = stepDir();
    writeFileSync(join(dir, "fixed"), "");
    const first = await submit(server.url, releaseFlow(dir));
    expect((await waitForRun(server.url, first, isFinal, 60_000)).status).toBe("success");
    const result = await runCli(["runs", "retry", first, "--from", "ship"], { env: cliEnv() });
    expect(result.code, result.stderr).toBe(0);
    const retry = /^run (\S+) retries/.exec(result.stdout)?.[1] ?? "";
    expect(result.stdout).toBe(`run ${retry} retries ${first} from step "ship"; kept: build, test\n`);
    expect((await waitForRun(server.url, retry, isFinal, 60_000)).status).toBe("success");
    expect(ran(dir)).toEqual(["build", "test", "ship", "ship"]);
  }, 120_000);

  it("retries a graph from its failed step, keeping every step that does not depend on it", async () => {
    const dir = stepDir();
    const first = await failedRun(graphFlow(dir));
    expect(ran(dir).sort()).toEqual(["a", "b", "c", "lone"]);
    writeFileSync(join(dir, "fixed"), "");
    const answer = await api<{ run_id: string; from: string; kept: string[] }>(
      server.url,
      "POST",
      `/api/runs/${first}/retry`,
      {},
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(answer.body).toMatchObject({ from: "lone", kept: ["c", "a", "b"] });
    expect((await waitForRun(server.url, answer.body.run_id, isFinal, 60_000)).status).toBe("success");
    expect(ran(dir).slice(4).sort()).toEqual(["after_lone", "lone"]);
  }, 120_000);

  it("runs one step of a run with every export of the run, and no other step", async () => {
    const dir = stepDir();
    const first = await failedRun(releaseFlow(dir));
    const result = await runCli(["runs", "run-step", first, "ship", "--follow", "--json"], { env: cliEnv() });
    expect(result.code, result.stderr).toBe(0);
    const events = parseEvents(result.stdout);
    expect(ran(dir)).toEqual(["build", "test", "ship"]);
    const view = (await api<Record<string, unknown>>(server.url, "GET", `/api/runs/${events[0]?.run_id}`))
      .body;
    expect(view).toMatchObject({ retry_of: first, retry_from: "ship", status: "success" });
    expect(view.vars).toMatchObject({ SHIPPED: "app-7 report-1" });
    expect((view.steps as { name: string }[]).map((s) => s.name)).toEqual(["ship"]);
  }, 120_000);

  it("retries with an edited workflow that replaces the steps from there on", async () => {
    const dir = stepDir();
    const first = await failedRun(releaseFlow(dir));
    const edited = writeWorkflow(releaseFlow(dir).replace("test -f fixed", "echo fixed by the edit"));
    const result = await runCli(["runs", "retry", first, "--workflow", edited, "--follow"], {
      env: cliEnv(),
    });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`build [local] success (kept from ${first})`);
    expect(result.stdout).toContain("fixed by the edit");
    expect(ran(dir)).toEqual(["build", "test", "test", "ship"]);
  }, 120_000);

  it("refuses an edited workflow whose steps need an export nobody kept, at its line and column, storing nothing", async () => {
    const dir = stepDir();
    const first = await failedRun(releaseFlow(dir));
    // The edit drops test's TEST_REPORT, which ship reads; test is not kept (it failed).
    const edited = writeWorkflow(
      releaseFlow(dir).replace('echo "TEST_REPORT=report-1" >> "$RUNYARD_OUTPUT"', "true"),
    );
    const before = await runCount();
    const result = await runCli(["runs", "retry", first, "--workflow", edited], { env: cliEnv() });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      `${edited}:20:5: step "ship" needs \${TEST_REPORT}, an export no kept step made and no step that runs makes`,
    );
    expect(result.stderr).toContain('step "test" exported it in the run retried');
    expect(await runCount()).toBe(before);
    expect(ran(dir)).toEqual(["build", "test"]);
  }, 120_000);

  it("runs examples/retry.yaml as its header says: fails at test, a retry with FIXED=yes keeps build, run-step ships alone", async () => {
    const submitted = await runCli(["run", "examples/retry.yaml"], { env: cliEnv() });
    expect(submitted.code).toBe(1);
    const first = /run (\S+) submitted/.exec(submitted.stderr)?.[1] ?? "";
    expect(submitted.stdout).toContain("testing app-1.0.tar.gz (fixed: no)");
    const retried = await runCli(["runs", "retry", first, "--var", "FIXED=yes", "--follow"], {
      env: cliEnv(),
    });
    expect(retried.code, retried.stdout + retried.stderr).toBe(0);
    expect(retried.stdout).toContain(`build [local] success (kept from ${first})`);
    expect(retried.stdout).not.toContain("building app-1.0");
    expect(retried.stdout).toContain("testing app-1.0.tar.gz (fixed: yes)");
    expect(retried.stdout).toContain("shipping app-1.0.tar.gz");
    const shipped = await runCli(["runs", "run-step", first, "ship", "--follow"], { env: cliEnv() });
    expect(shipped.code, shipped.stderr).toBe(0);
    expect(shipped.stdout).toContain("shipping app-1.0.tar.gz");
    expect(shipped.stdout).not.toContain("testing");
  }, 120_000);

  it("refuses a running run and a step the run does not have, suggesting the close name", async () => {
    const dir = stepDir();
    const running = await submit(
      server.url,
      `name: slow\nsteps:\n  - name: wait\n    action: shell.run\n    args: {cwd: ${dir}, script: 'until [ -f go ]; do sleep 0.05; done'}\n`,
    );
    await waitForRun(server.url, running, (run) => run.status === "running", 60_000);
    const before = await runCount();
    const busy = await runCli(["runs", "retry", running], { env: cliEnv() });
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toContain(`run ${running} is running: only a finished run is retried`);
    writeFileSync(join(dir, "go"), "");
    expect((await waitForRun(server.url, running, isFinal, 60_000)).status).toBe("success");
    const unknown = await runCli(["runs", "retry", running, "--from", "waitt"], { env: cliEnv() });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain(`run ${running} has no step "waitt"`);
    expect(unknown.stderr).toContain('did you mean "wait"?');
    expect(await runCount()).toBe(before);
  }, 120_000);
});
