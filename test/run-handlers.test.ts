// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { finished, parseEvents, runCli, writeWorkflow } from "./helpers/cli.js";
import {
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

/** A workflow whose main step does `main`, and whose handlers each print what they saw. */
const flow = (main: string, rollback = "", handlerFails = false) => `name: handled
vars: {WHO: ops}
on:
  success:
    - name: cheer
      action: cmd.run
      args: {cmd: 'echo "success handler: $RUN_STATUS $RESULT"'}
  failure:
    - name: page
      action: shell.run
      args:
        script: |
          echo "failure handler: $RUN_STATUS at $FAILED_STEP for $WHO"
          ${handlerFails ? "exit 3" : "true"}
  cancel:
    - name: tidy
      action: cmd.run
      args: {cmd: 'echo "cancel handler: $RUN_STATUS"'}
  exit:
    - name: always
      action: cmd.run
      args: {cmd: 'echo "exit handler: $RUN_STATUS"'}
steps:
  - name: work
    action: shell.run
    args:
      export_vars: true
      script: |
        ${main}
${rollback}`;

const undo = `    rollback:
      action: cmd.run
      args: {cmd: echo "rollback ran"}
  - name: breaks
    action: cmd.run
    args: {cmd: "false"}
`;

describe("on: handlers in runyard run (no server)", () => {
  it("a run that succeeds runs its success handlers, then exit's, with RUN_STATUS and the run's exports", async () => {
    const result = await runCli(["run", writeWorkflow(flow('echo "BOPS_EXPORT:RESULT=r7"')), "--json"]);
    expect(result.code).toBe(0);
    const events = parseEvents(result.stdout);
    const output = events.flatMap((e) =>
      e.type === "step.output" && e.step.startsWith("on ") ? [`${e.step}: ${e.data.trim()}`] : [],
    );
    expect(output).toEqual([
      "on success: cheer: success handler: success r7",
      "on exit: always: exit handler: success",
    ]);
    expect(finished(events).status).toBe("success");
  });

  it("a failed run runs its rollbacks first, then the failure handlers with FAILED_STEP, then exit's", async () => {
    const result = await runCli(["run", writeWorkflow(flow("true", undo)), "--json"]);
    expect(result.code).toBe(1);
    const events = parseEvents(result.stdout);
    const started = events.flatMap((e) => (e.type === "step.started" ? [e.step] : []));
    expect(started).toEqual(["work", "breaks", "rollback: work", "on failure: page", "on exit: always"]);
    const page = events.find((e) => e.type === "step.output" && e.step === "on failure: page");
    expect(page?.type === "step.output" && page.data.trim()).toBe(
      "failure handler: failed at breaks for ops",
    );
    expect(finished(events).status).toBe("failed");
  });

  it("a handler that fails is reported and the run's status stands", async () => {
    const result = await runCli(["run", writeWorkflow(flow("false", "", true))]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      'handler "on failure: page" did not succeed; the run\'s status (failed) stands',
    );
    expect(result.stdout).toContain("handler failed: on failure: page (the run's status stands)");
    const json = await runCli(["run", writeWorkflow(flow("false", "", true)), "--json"]);
    const end = finished(parseEvents(json.stdout));
    expect(end.status).toBe("failed");
    expect(end.error?.code).toBe("STEP_FAILED");
    expect(end.handlers_failed).toEqual(["on failure: page"]);
  });

  it("refuses a handler written wrong at its line and column", async () => {
    const result = await runCli([
      "validate",
      writeWorkflow(
        "name: x\non:\n  failed:\n    - {name: a, action: cmd.run, args: {cmd: 'true'}}\n  exit:\n    - {name: b, action: approval, args: {message: m, approvers: [ann]}}\nsteps:\n  - {name: s, action: cmd.run, args: {cmd: 'true'}}\n",
      ),
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      ':3:3: unknown key "failed" in on (hint: a failed (or timed out) run runs "failure")',
    );
    expect(result.stderr).toContain(':6:7: step "b" of on.exit is an approval');
  });

  it("says a workflow.call step needs a server, at its line and column, before anything runs", async () => {
    const result = await runCli([
      "run",
      writeWorkflow(
        "name: x\nsteps:\n  - {name: first, action: cmd.run, args: {cmd: 'echo ran'}}\n  - name: reuse\n    action: workflow.call\n    args: {workflow: deploy}\n",
      ),
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      "a workflow.call step cannot run without a server: saved workflows live on one",
    );
    expect(result.stderr).toContain("runyard run FILE --server URL");
    expect(result.stderr).toContain(':4:5: step "reuse" calls deploy');
    expect(result.stdout).not.toContain("ran");
  });
});

describe("on: handlers on a server with a sandboxed runner", () => {
  let server: TestServer;
  let runner: Proc;

  beforeAll(async () => {
    server = await startTestServer();
    runner = await startRunner(server.url, await runnerToken(server.url), { id: "handlers-1" });
  }, 60_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  const run = async (workflow: string) => {
    const { body } = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      kind: "workflow",
      workflow,
    });
    return body.run_id;
  };
  const handlerOutput = async (id: string) =>
    (await readEvents(server.url, id)).flatMap((e) =>
      e.type === "step.output" && e.step.startsWith("on ") ? [`${e.step}: ${e.data.trim()}`] : [],
    );

  it("success, failure and exit handlers run for their outcome; a failing handler leaves the status", async () => {
    const ok = await run(flow('echo "BOPS_EXPORT:RESULT=r1"'));
    expect((await waitForRun(server.url, ok, isFinal, 60_000)).status).toBe("success");
    expect(await handlerOutput(ok)).toEqual([
      "on success: cheer: success handler: success r1",
      "on exit: always: exit handler: success",
    ]);
    const bad = await run(flow("false", "", true));
    const failed = await waitForRun(server.url, bad, isFinal, 60_000);
    expect(failed.status).toBe("failed");
    expect(failed.error?.code).toBe("STEP_FAILED");
    expect(await handlerOutput(bad)).toEqual([
      "on failure: page: failure handler: failed at work for ops",
      "on exit: always: exit handler: failed",
    ]);
    const end = (await readEvents(server.url, bad)).find((e) => e.type === "run.finished");
    expect(end?.type === "run.finished" && end.handlers_failed).toEqual(["on failure: page"]);
  }, 120_000);

  it("a canceled run runs its cancel handlers, then exit's", async () => {
    const id = await run(flow("sleep 60"));
    await waitForRun(
      server.url,
      id,
      (r) => r.steps.some((s) => s.name === "work" && s.status === "running"),
      60_000,
    );
    await api(server.url, "POST", `/api/runs/${id}/cancel`);
    const ended = await waitForRun(server.url, id, isFinal, 60_000);
    expect(ended.status).toBe("canceled");
    expect(await handlerOutput(id)).toEqual([
      "on cancel: tidy: cancel handler: canceled",
      "on exit: always: exit handler: canceled",
    ]);
  }, 120_000);
});
