import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EventOf, RunEvent } from "../src/core/events.js";
import { finished, parseEvents, runCli, writeWorkflow } from "./helpers/cli.js";
import {
  adminToken,
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

/*
 * Retry policies and the run's timeout through a real server and sandboxed runners: which
 * failures are retried (error with its exit codes, timeout, a lost runner), how long each wait
 * is, and how the CLI tells it; a run past its `timeout:` is stopped with RUN_TIMEOUT.
 */

const retries = (events: RunEvent[]): EventOf<"step.retrying">[] =>
  events.filter((e): e is EventOf<"step.retrying"> => e.type === "step.retrying");

/** A step (working in a folder of its own) that fails with `code` until it has run `failures` times. */
const failsTimes = (failures: number, code: number) =>
  `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; if [ $n -le ${failures} ]; then echo "attempt $n fails"; exit ${code}; fi; echo "attempt $n passes"`;

describe("retry policies on a server", () => {
  let server: TestServer;
  const procs: Proc[] = [];
  beforeAll(async () => {
    server = await startTestServer();
    procs.push(
      await startRunner(server.url, await runnerToken(server.url, "retry"), {
        id: "retry-1",
        group: "retry",
      }),
    );
  });
  afterEach(async () => {
    await Promise.all(procs.splice(1).map((p) => p.kill("SIGKILL")));
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill("SIGKILL")));
    await server.proc.kill("SIGKILL");
  });

  const inventory = "inventory:\n  hosts:\n    a: {group: retry}\n";

  it("retries listed exit codes with capped exponential back-off, a timed-out attempt, and says each wait", async () => {
    const flakyDir = stepDir();
    const slowDir = stepDir();
    const runId = await submit(
      server.url,
      `name: retried
${inventory}steps:
  - name: flaky
    targets: [a]
    action: shell.run
    retry: {attempts: 3, backoff: exponential, delay: 0.2, max_delay: 0.3, on_exit_codes: [75]}
    args:
      cwd: ${flakyDir}
      script: '${failsTimes(2, 75)}'
  - name: slow
    targets: [a]
    action: shell.run
    timeout_seconds: 2
    retry: {attempts: 2, backoff: fixed, delay: 100ms, on: [timeout]}
    args:
      cwd: ${slowDir}
      script: 'if [ ! -e once ]; then touch once; sleep 60; fi; echo quick now'
`,
    );
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.status).toBe("success");
    expect(run.steps.map((s) => `${s.name}:${s.status}:${s.attempts}`)).toEqual([
      "flaky:success:3",
      "slow:success:2",
    ]);
    const events = await readEvents(server.url, runId);
    expect(
      retries(events).map((e) => ({
        step: e.step,
        attempt: e.attempt,
        reason: e.reason,
        exit: e.exit_code,
        delay: e.delay_ms,
        of: e.max_attempts,
      })),
    ).toEqual([
      { step: "flaky", attempt: 1, reason: "error", exit: 75, delay: 200, of: 3 },
      { step: "flaky", attempt: 2, reason: "error", exit: 75, delay: 300, of: 3 },
      { step: "slow", attempt: 1, reason: "timeout", exit: null, delay: 100, of: 2 },
    ]);
    expect(retries(events)[2]?.error?.code).toBe("TIMEOUT");
    // Each attempt is its own step.started, numbered.
    expect(
      events
        .filter((e) => e.type === "step.started" && e.step === "flaky")
        .map((e) => (e as EventOf<"step.started">).attempt),
    ).toEqual([1, 2, 3]);

    const logs = await runCli(["runs", "logs", runId, "--server", server.url], {
      env: { RUNYARD_TOKEN: adminToken },
    });
    expect(logs.stdout).toContain("↻ flaky [a] attempt 1 of 3 failed (exit 75); retrying in 0.20s");
    expect(logs.stdout).toContain("↻ flaky [a] attempt 2 of 3 failed (exit 75); retrying in 0.30s");
    expect(logs.stdout).toMatch(
      /↻ slow \[a\] attempt 1 of 2 failed \(timeout: step timed out after 2s\); retrying in 0\.10s/,
    );
  }, 90_000);

  it("does not retry an exit code the policy leaves out, and says why in the run's events", async () => {
    const dir = stepDir();
    const runId = await submit(
      server.url,
      `name: not-retried
${inventory}steps:
  - name: broken
    targets: [a]
    action: shell.run
    retry: {attempts: 5, delay: 0, on_exit_codes: [75]}
    args:
      cwd: ${dir}
      script: '${failsTimes(9, 3)}'
`,
    );
    const run = await waitForRun(server.url, runId, isFinal, 30_000);
    expect(run.status).toBe("failed");
    expect(run.steps[0]).toMatchObject({ status: "failed", exit_code: 3, attempts: 1 });
    const events = await readEvents(server.url, runId);
    expect(retries(events)).toEqual([]);
    expect(events.find((e) => e.type === "notice" && e.step === "broken")).toMatchObject({
      message: "not retried: exit code 3 is not in retry.on_exit_codes (75)",
    });
    const logs = await runCli(["runs", "logs", runId, "--server", server.url], {
      env: { RUNYARD_TOKEN: adminToken },
    });
    expect(logs.stdout).toContain("not retried: exit code 3 is not in retry.on_exit_codes (75)");
  }, 60_000);

  it("retries a step whose runner was lost on another runner when on lists runner_lost", async () => {
    const dir = stepDir();
    const doomed = await startRunner(server.url, await runnerToken(server.url, "lost"), {
      id: "doomed",
      group: "lost",
    });
    procs.push(doomed);
    const runId = await submit(
      server.url,
      `name: lost
inventory:
  hosts:
    b: {group: lost}
steps:
  - name: long
    targets: [b]
    action: shell.run
    retry: {attempts: 2, backoff: fixed, delay: 0.1, on: [runner_lost]}
    args:
      cwd: ${dir}
      script: 'if [ ! -e began ]; then touch began; echo holding; sleep 600; fi; echo second runner'
`,
    );
    await waitForRun(server.url, runId, (run) => run.steps.some((s) => s.status === "running"));
    // The first attempt has begun on the doomed runner once its marker is there.
    const began = join(dir, "began");
    for (let tries = 0; !existsSync(began); tries++) {
      if (tries > 600) throw new Error("the first attempt never began");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await doomed.kill("SIGKILL");
    procs.push(
      await startRunner(server.url, await runnerToken(server.url, "lost"), { id: "heir", group: "lost" }),
    );
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.status).toBe("success");
    expect(run.steps[0]?.attempts).toBe(2);
    const events = await readEvents(server.url, runId);
    expect(retries(events).map((e) => [e.reason, e.error?.code])).toEqual([["runner_lost", "RUNNER_LOST"]]);
  }, 90_000);

  it("stops a run past its timeout with RUN_TIMEOUT, its steps canceled", async () => {
    const started = Date.now();
    const runId = await submit(
      server.url,
      `name: too-long
timeout: 2s
${inventory}steps:
  - name: forever
    targets: [a]
    action: shell.run
    args: {script: 'sleep 600'}
  - name: after
    targets: [a]
    action: cmd.run
    args: {cmd: echo never}
`,
    );
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(run.status).toBe("timeout");
    expect(run.error).toMatchObject({
      code: "RUN_TIMEOUT",
      message: "the run passed its timeout of 2 s; its steps were stopped",
    });
    expect(run.steps.map((s) => `${s.name}:${s.status}`)).toEqual(["forever:canceled", "after:canceled"]);
    const shown = await runCli(["runs", "show", runId, "--server", server.url], {
      env: { RUNYARD_TOKEN: adminToken },
    });
    expect(shown.stdout).toContain("RUN_TIMEOUT");
  }, 60_000);
});

describe("retry policies without a server", () => {
  it("runyard run shows each retry's reason and wait, and a run past its timeout ends timeout", async () => {
    const dir = stepDir();
    const file = writeWorkflow(`name: local-retry
steps:
  - name: flaky
    action: shell.run
    retry: {attempts: 2, backoff: fixed, delay: 0.1}
    args:
      cwd: ${dir}
      script: '${failsTimes(1, 4)}'
`);
    const result = await runCli(["run", file]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(result.stdout).toContain("↻ flaky [local] attempt 1 of 2 failed (exit 4); retrying in 0.10s");

    const slow = writeWorkflow(
      "name: slow\ntimeout: 1\nsteps:\n  - name: s\n    action: cmd.run\n    args: {cmd: sleep 600}\n",
    );
    const json = await runCli(["run", slow, "--json"]);
    expect(finished(parseEvents(json.stdout))).toMatchObject({
      status: "timeout",
      error: { code: "RUN_TIMEOUT" },
    });
  }, 60_000);
});
