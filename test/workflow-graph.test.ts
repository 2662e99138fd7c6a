// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { finished, parseEvents, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import { until as untilTrue } from "./helpers/processes.js";
import {
  adminToken,
  api,
  isFinal,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  waitForRun,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");

/** The order steps started and finished in, as `+a` and `-a`. */
function timeline(events: RunEvent[]): string[] {
  return events.flatMap((e) =>
    e.type === "step.started" ? [`+${e.step}`] : e.type === "step.finished" ? [`-${e.step}`] : [],
  );
}

function outputOf(events: RunEvent[], step: string): string {
  return events.flatMap((e) => (e.type === "step.output" && e.step === step ? [e.data] : [])).join("");
}

/**
 * a exports FROM_A; b depends on a; c on b; lone depends on nothing and fails; after_lone is
 * skipped for it. Each step prints what it sees of FROM_A.
 */
const graphFlow = `name: graph
steps:
  - name: c
    depends: [b]
    action: shell.run
    args: {script: 'echo "c sees FROM_A=\${FROM_A:-unset}"'}
  - name: a
    depends: []
    action: shell.run
    args: {script: 'echo "FROM_A=1" >> "$RUNYARD_OUTPUT"'}
  - name: b
    depends: [a]
    action: shell.run
    args: {script: 'echo "b sees FROM_A=\${FROM_A:-unset}"'}
  - name: lone
    action: shell.run
    args: {script: 'echo "lone sees FROM_A=\${FROM_A:-unset}"; exit 4'}
  - name: after_lone
    depends: [lone]
    action: shell.run
    args: {script: 'echo never'}
`;

function checkGraphRun(events: RunEvent[]): void {
  const order = timeline(events);
  expect(order.indexOf("+b")).toBeGreaterThan(order.indexOf("-a"));
  expect(order.indexOf("+c")).toBeGreaterThan(order.indexOf("-b"));
  expect(outputOf(events, "b")).toBe("b sees FROM_A=1\n");
  expect(outputOf(events, "c")).toBe("c sees FROM_A=1\n");
  expect(outputOf(events, "lone")).toBe("lone sees FROM_A=unset\n");
  expect(order).not.toContain("+after_lone");
  const skipped = events.find((e) => e.type === "step.finished" && e.step === "after_lone");
  expect(skipped).toMatchObject({ status: "skipped", reason: 'dependency "lone" failed' });
  const end = finished(events);
  expect(end.status).toBe("failed");
  expect(end.error?.message).toMatch(/^step "lone" on local: /);
}

/** Two matrix combinations, each recording itself; `after` depends on all of them. */
const matrixFlow = `name: matrix
steps:
  - name: test
    matrix:
      NODE: ["18", "20"]
      OS: [a, b]
      exclude: [{NODE: "20", OS: b}]
    action: shell.run
    args: {script: 'echo "node $NODE on $OS"'}
  - name: after
    depends: [test]
    action: cmd.run
    args: {cmd: echo after}
`;

const matrixNames = ["test (NODE=18, OS=a)", "test (NODE=18, OS=b)", "test (NODE=20, OS=a)"];

function checkMatrixRun(events: RunEvent[]): void {
  const order = timeline(events);
  for (const name of matrixNames) {
    expect(outputOf(events, name)).toBe(`node ${name.slice(11, 13)} on ${name.at(-2)}\n`);
    expect(order.indexOf("+after")).toBeGreaterThan(order.indexOf(`-${name}`));
  }
  expect(finished(events).steps?.map((s) => s.name)).toEqual([...matrixNames, "after"]);
}

/** deploy_db, then deploy_app (each undone into $LOG), then a failing smoke test. */
function rollbackFlow(log: string): string {
  return `name: rollback
vars: {LOG: "${log}"}
steps:
  - name: deploy_db
    action: shell.run
    args: {script: 'echo "VERSION=7" >> "$RUNYARD_OUTPUT"'}
    rollback: {action: shell.run, args: {cwd: "${dirname(log)}", script: 'echo "undo db $VERSION" >> "$LOG"'}}
  - name: deploy_app
    action: shell.run
    args: {script: "true"}
    rollback: {action: cmd.run, args: {cwd: "${dirname(log)}", cmd: 'sh -c "echo undo app >> $LOG"'}}
  - name: smoke
    action: shell.run
    args: {script: "exit 1"}
`;
}

describe("runyard run: step graphs, matrices and rollback", () => {
  it("runs a graph: dependents after their dependencies, exports only to them, a failed branch skipped", async () => {
    const result = await runCli(["run", writeWorkflow(graphFlow), "--json"]);
    expect(result.code).toBe(1);
    checkGraphRun(parseEvents(result.stdout));
  });

  it("runs at most max_parallel steps at once, and that many when they can", async () => {
    // Each step marks its start, notes how many steps run at that moment, then waits until its
    // batch of three has started: fewer than three at once would never get past it. A start with
    // its count, and an end, each hold a lock: a step of the batch ending between another's
    // touch and its count would make that count one short.
    const dir = tempDir();
    const steps = Array.from(
      { length: 6 },
      (_, i) => `  - name: s${i}
    depends: []
    timeout_seconds: 30
    action: shell.run
    args:
      env: {BATCH_END: "${3 * (Math.floor(i / 3) + 1)}"}
      script: |
        cd "${dir}"
        flock lock sh -c 'touch start.s${i}; echo $(( $(ls start.* | wc -l) - $(ls end.* 2>/dev/null | wc -l) )) >> seen'
        until [ "$(ls start.* | wc -l)" -ge "$BATCH_END" ]; do sleep 0.01; done
        flock lock touch end.s${i}
`,
    ).join("");
    const result = await runCli(["run", writeWorkflow(`name: p\nmax_parallel: 3\nsteps:\n${steps}`), "-q"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const seen = readFileSync(join(dir, "seen"), "utf8").trim().split("\n").map(Number);
    expect(seen).toHaveLength(6);
    expect(Math.max(...seen)).toBe(3);
  });

  it("runs each matrix combination under its name; a dependent waits for all of them", async () => {
    const result = await runCli(["run", writeWorkflow(matrixFlow), "--json"]);
    expect(result.code, result.stderr).toBe(0);
    checkMatrixRun(parseEvents(result.stdout));
  });

  it("names a combination with a huge value short, and says why the kernel refused to start it", async () => {
    const huge = "x".repeat(200_000);
    const flow = `name: huge\nsteps:\n  - name: t\n    matrix:\n      V: ["${huge}"]\n    action: shell.run\n    args:\n      script: echo \${#V}\n`;
    const result = await runCli(["run", writeWorkflow(flow), "--json"]);
    expect(result.code).toBe(1);
    const end = finished(parseEvents(result.stdout));
    expect(end.steps?.map((s) => s.name)).toEqual([`t (V=${"x".repeat(39)}…)`]);
    expect(end.error?.code).toBe("SPAWN_FAILED");
    expect(end.error?.message).toContain("one variable or argument may hold at most 128 KiB");
    expect(end.error?.hint).toContain("Pass large data in a file");
  });

  it("prints the lines of steps running at once whole, each naming its step", async () => {
    const writer = (name: string) => `  - name: ${name}
    depends: []
    action: shell.run
    args: {script: 'for i in $(seq 300); do printf "${name}-$i-"; printf "end\\n"; done'}
`;
    const result = await runCli([
      "run",
      writeWorkflow(`name: lines\nsteps:\n${writer("left")}${writer("right")}`),
    ]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n").filter((line) => line.includes(" | "));
    expect(lines).toHaveLength(600);
    for (const line of lines) expect(line).toMatch(/^(left|right) \[local\] \| \1-\d+-end$/);
  });

  it("rolls back the steps that succeeded, the last first, and says so; --no-rollback does not", async () => {
    const log = join(tempDir(), "undo.log");
    const file = writeWorkflow(rollbackFlow(log));
    const result = await runCli(["run", file]);
    expect(result.code).toBe(1);
    expect(readFileSync(log, "utf8")).toBe("undo app\nundo db 7\n");
    expect(result.stdout).toMatch(/✔ rollback: deploy_app \[local\] success/);
    expect(result.stdout).toContain("rolled back: every rollback succeeded");
    expect(result.stdout).toContain('STEP_FAILED: step "smoke" on local');

    const skipped = await runCli([
      "run",
      writeWorkflow(rollbackFlow(join(tempDir(), "undo.log"))),
      "--no-rollback",
      "--json",
    ]);
    expect(skipped.code).toBe(1);
    const end = finished(parseEvents(skipped.stdout));
    expect(end.rolled_back).toBeUndefined();
    expect(end.steps?.map((s) => s.name)).toEqual(["deploy_db", "deploy_app", "smoke"]);
  });

  it("refuses a cycle and an unknown dependency before anything runs, with line and column", async () => {
    const file = writeWorkflow(`name: bad
steps:
  - {name: a, depends: [b], action: cmd.run, args: {cmd: "true"}}
  - {name: b, depends: [a], action: cmd.run, args: {cmd: "true"}}
  - {name: c, depends: [bb], action: cmd.run, args: {cmd: "true"}}
`);
    const result = await runCli(["run", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:3:25: steps depend on each other in a cycle: a -> b -> a`);
    expect(result.stderr).toContain(
      `${file}:5:25: step "c" depends on "bb", which is not a step of this file (hint: did you mean "b"?)`,
    );
  });
});

/** The graph, the matrix and a rollback through a server and a runner, on the given database. */
async function throughServer(env: Record<string, string>): Promise<void> {
  const server = await startTestServer(tempDir(), env);
  const runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "graph-runner",
    capacity: 4,
  });
  try {
    const graphRun = await submit(server.url, graphFlow);
    const matrixRun = await submit(server.url, matrixFlow);
    const log = join(stepDir(), "undo.log");
    const rollbackRun = await submit(server.url, rollbackFlow(log));
    const failingRollback = await submit(
      server.url,
      `name: undo-fails
steps:
  - name: deploy
    action: cmd.run
    args: {cmd: 'true'}
    rollback: {action: cmd.run, args: {cmd: 'sh -c "exit 4"'}}
  - name: smoke
    action: cmd.run
    args: {cmd: 'false'}
`,
    );
    const { body: noRollback } = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      workflow: rollbackFlow(join(stepDir(), "never.log")),
      no_rollback: true,
    });
    for (const id of [graphRun, matrixRun, rollbackRun, failingRollback, noRollback.run_id]) {
      await waitForRun(server.url, id, isFinal, 60_000);
    }
    checkGraphRun(await readEvents(server.url, graphRun));
    checkMatrixRun(await readEvents(server.url, matrixRun));

    const rolledBack = finished(await readEvents(server.url, rollbackRun));
    expect(rolledBack).toMatchObject({ status: "failed", rolled_back: true });
    expect(readFileSync(log, "utf8")).toBe("undo app\nundo db 7\n");
    const record = await waitForRun(server.url, rollbackRun, isFinal);
    expect(record.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      "deploy_db:success",
      "deploy_app:success",
      "smoke:failed",
      "rollback: deploy_app:success",
      "rollback: deploy_db:success",
    ]);
    // The record keeps how the rollbacks went, for the API, `runyard runs show` and the web page.
    const kept = await api<{ rolled_back: boolean; rollback_failed: string | null }>(
      server.url,
      "GET",
      `/api/runs/${rollbackRun}`,
    );
    expect(kept.body).toMatchObject({ rolled_back: true, rollback_failed: null });
    const broken = await api(server.url, "GET", `/api/runs/${failingRollback}`);
    expect(broken.body).toMatchObject({
      status: "failed",
      rolled_back: false,
      rollback_failed: "rollback: deploy",
    });
    const shown = await runCli(["runs", "show", failingRollback], {
      env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken },
    });
    expect(shown.stdout).toContain("rollback failed: rollback: deploy; later rollbacks did not run");
    expect((await api(server.url, "GET", `/api/runs/${noRollback.run_id}`)).body).toMatchObject({
      rolled_back: false,
      rollback_failed: null,
    });
    const notRolledBack = finished(await readEvents(server.url, noRollback.run_id));
    expect(notRolledBack.status).toBe("failed");
    expect(notRolledBack.rolled_back).toBeUndefined();
    expect(notRolledBack.steps?.some((s) => s.name.startsWith("rollback"))).toBe(false);

    // The CLI's flag reaches the server as no_rollback, and a re-run keeps it.
    const viaCli = await runCli(
      ["run", writeWorkflow(rollbackFlow(join(tempDir(), "cli.log"))), "--no-rollback", "--json"],
      { env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken } },
    );
    expect(viaCli.code).toBe(1);
    expect(finished(parseEvents(viaCli.stdout)).steps?.map((s) => s.name)).toEqual([
      "deploy_db",
      "deploy_app",
      "smoke",
    ]);

    // A cycle is refused at submit, and nothing is stored.
    const before = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs");
    const refused = await api<{ error: { code: string; message: string } }>(server.url, "POST", "/api/runs", {
      workflow: "name: bad\nsteps:\n  - {name: a, depends: [a], action: cmd.run, args: {cmd: 'true'}}\n",
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain("steps depend on each other in a cycle: a -> a");
    const after = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs");
    expect(after.body.runs).toHaveLength(before.body.runs.length);
  } finally {
    await runner.kill();
    await server.proc.kill();
  }
}

describe("a server and a runner: step graphs, matrices and rollback", () => {
  it("goes on with a graph across a server SIGKILL and restart, running no finished step again", async () => {
    const dir = stepDir();
    const home = tempDir();
    const server = await startTestServer(home);
    const port = Number(new URL(server.url).port);
    const runner = await startRunner(server.url, await runnerToken(server.url), { id: "steady" });
    let restarted: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      const runId = await submit(
        server.url,
        `name: resumed
steps:
  - name: first
    depends: []
    action: shell.run
    args: {cwd: "${dir}", script: 'echo ran >> "${dir}/first.log"; echo "FROM_FIRST=1" >> "$RUNYARD_OUTPUT"'}
  - name: held
    depends: [first]
    action: shell.run
    args: {cwd: "${dir}", script: 'touch "${dir}/held"; until [ -e "${dir}/release" ]; do sleep 0.05; done'}
  - name: last
    depends: [held]
    action: shell.run
    args: {script: 'echo "last sees FROM_FIRST=\${FROM_FIRST:-unset}"'}
`,
      );
      await untilTrue("the held step started", () => existsSync(join(dir, "held")), 30_000);
      await server.proc.kill("SIGKILL");
      restarted = await startTestServer(home, {}, port);
      writeFileSync(join(dir, "release"), "");
      const run = await waitForRun(restarted.url, runId, isFinal, 60_000);
      expect(run.status).toBe("success");
      expect(readFileSync(join(dir, "first.log"), "utf8")).toBe("ran\n");
      const events = await readEvents(restarted.url, runId);
      expect(timeline(events).filter((e) => e === "+first")).toHaveLength(1);
      expect(outputOf(events, "last")).toBe("last sees FROM_FIRST=1\n");
    } finally {
      await runner.kill();
      await restarted?.proc.kill();
      await server.proc.kill();
    }
  }, 120_000);

  it("on SQLite", () => throughServer({}), 120_000);

  it.skipIf(!adminUrl)(
    "on PostgreSQL",
    async () => throughServer({ RUNYARD_DATABASE_URL: await createTestDatabase(adminUrl) }),
    120_000,
  );
});
