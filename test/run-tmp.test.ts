import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { until } from "./helpers/processes.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { api, readEvents, waitForRun } from "./helpers/server.js";

/**
 * A run's /tmp on a sandboxed runner (`runyard up` with its sandbox on): the steps of one run
 * share it, as on an unsandboxed runner and on every CI system; a run started beside it cannot
 * see or reach it, however its step looks; and it goes once the run is over.
 */
let up: SandboxedUp & { listed: string };

/**
 * Where the server says each run's end, the runner removes a run's /tmp then; its keep timer (the
 * fallback of an older server, 6 h by default) never comes into it here.
 */

beforeAll(async () => {
  // One `up` for the file; each test works in runs and folders of its own. Members' steps name
  // their folders under a root the operator lists (step_cwd_roots).
  const listed = tempDir("runyard-listed-");
  up = {
    ...(await startSandboxedUp({
      RUNYARD_STEP_CWD_ROOTS: listed,
    })),
    listed,
  };
});

afterAll(async () => {
  await up?.proc.kill();
});

async function submit(workflow: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    up.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow, vars: {} },
    up.userToken,
  );
  if (status !== 201) throw new Error(`submit failed: ${status} ${JSON.stringify(body)}`);
  return body.run_id;
}

const ended = (view: { status: string }) => view.status === "success" || view.status === "failed";

async function outputOf(runId: string): Promise<string> {
  const events = await readEvents(up.url, runId);
  return events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
}

/** A workflow of shell.run steps, in file order, on the local runner. */
function workflow(
  steps: Array<{ name: string; script: string; cwd?: string; env?: Record<string, string> }>,
) {
  const lines = ["version: v0.1", "name: run-tmp", "inventory:", "  hosts:", "    local: {}", "steps:"];
  for (const step of steps) {
    lines.push(`  - name: ${step.name}`, "    targets: [local]", "    action: shell.run", "    args:");
    if (step.cwd) lines.push(`      cwd: ${step.cwd}`);
    if (step.env) {
      lines.push("      env:");
      for (const [name, value] of Object.entries(step.env)) lines.push(`        ${name}: "${value}"`);
    }
    lines.push("      script: |", ...step.script.split("\n").map((line) => `        ${line}`));
  }
  return `${lines.join("\n")}\n`;
}

/** Where the runner keeps `runId`'s /tmp: under its own state folder in the home. */
function hostTmpOf(runId: string): string {
  const runners = join(up.home, "runners");
  const [runner] = readdirSync(runners);
  const name = /^[A-Za-z0-9_-]+$/.test(runId) ? runId : `run-${encodeURIComponent(runId)}`;
  return join(runners, runner!, "runs", name, "tmp");
}

/** The step's shell line that prints the host folder mounted as its /tmp, from its own mountinfo. */
const printTmpSource = `awk '$5 == "/tmp" { print "tmp-source=" $4 }' /proc/self/mountinfo`;

describe("a run's /tmp on a sandboxed runner", () => {
  it("is shared by the run's steps: a file one step writes there, the next reads", async () => {
    const runId = await submit(
      workflow([
        { name: "write", script: "echo shared-through-tmp > /tmp/handoff.txt" },
        { name: "read", script: `cat /tmp/handoff.txt\n${printTmpSource}` },
      ]),
    );
    const run = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(run.status, output).toBe("success");
    expect(output).toContain("shared-through-tmp\n");
    // The host folder behind it is the run's own, under the runner's state folder.
    expect(output).toContain(`tmp-source=${hostTmpOf(runId)}\n`);
  });

  it("is out of reach of a run beside it: not in its /tmp, not through /proc/<pid>/root, not by the host path its mountinfo shows", async () => {
    const folderA = join(up.listed, "run-a");
    mkdirSync(folderA);
    // Run A leaves a secret in its /tmp, says so by a file in its working folder, and waits for a
    // file the test writes there once run B has tried: no sleep stands in for either.
    const runA = await submit(
      workflow([
        {
          name: "hold",
          cwd: folderA,
          script: [
            "echo tmp-secret-of-a > /tmp/a-secret.txt",
            "touch ready",
            "while [ ! -e release ]; do sleep 0.05; done",
            "cat /tmp/a-secret.txt",
          ].join("\n"),
        },
      ]),
    );
    await until("run A holds its /tmp", () => existsSync(join(folderA, "ready")), 30_000);
    const tmpA = hostTmpOf(runA);
    expect(statSync(tmpA).mode & 0o777).toBe(0o700);

    const runB = await submit(
      workflow([
        {
          name: "snoop",
          env: { OTHER_RUN: runA },
          script: [
            "ls -a /tmp",
            "cat /tmp/a-secret.txt 2>/dev/null && echo LEAK-own-tmp || echo no-own-tmp",
            "cat /proc/[0-9]*/root/tmp/a-secret.txt 2>/dev/null && echo LEAK-proc-root || echo no-proc-root",
            // What an attacker reads off the mount table: its own folder's host path, and so the
            // folders of the runs beside it, each named after its run.
            `mine=$(awk '$5 == "/tmp" { print $4 }' /proc/self/mountinfo)`,
            'echo "tmp-source=$mine"',
            'parent=$(dirname "$mine")',
            'ls "$(dirname "$parent")" 2>/dev/null | grep -vx "$(basename "$parent")" | grep -q . && echo LEAK-listing || echo no-listing',
            'cat "$(dirname "$parent")/$OTHER_RUN/tmp/a-secret.txt" 2>/dev/null && echo LEAK-guessed-path || echo no-guessed-path',
            `cat ${tmpA}/a-secret.txt 2>/dev/null && echo LEAK-host-path || echo no-host-path`,
          ].join("\n"),
        },
      ]),
    );
    const viewB = await waitForRun(up.url, runB, ended);
    writeFileSync(join(folderA, "release"), "");
    const viewA = await waitForRun(up.url, runA, ended);

    const outputB = await outputOf(runB);
    expect(viewB.status, outputB).toBe("success");
    expect(outputB).not.toContain("tmp-secret-of-a");
    expect(outputB).not.toContain("a-secret.txt");
    expect(outputB).not.toContain("LEAK");
    for (const blocked of ["own-tmp", "proc-root", "listing", "guessed-path", "host-path"])
      expect(outputB).toContain(`no-${blocked}\n`);
    // B's /tmp is a folder of its own, beside A's.
    expect(outputB).toContain(`tmp-source=${hostTmpOf(runB)}\n`);
    expect(viewA.status).toBe("success");
    expect(await outputOf(runA)).toContain("tmp-secret-of-a\n");
  });

  it("is out of reach through $RUNYARD_OUTPUT: a link there to run A's file exports nothing of it", async () => {
    const folderA = join(up.listed, "run-a-env");
    mkdirSync(folderA);
    // Run A keeps KEY=value lines in its /tmp (an env file, as many tools write) and holds them
    // there until the test releases it.
    const runA = await submit(
      workflow([
        {
          name: "hold",
          cwd: folderA,
          script: [
            "echo LEAKED=tmp-secret-of-a > /tmp/a.env",
            "touch ready",
            "while [ ! -e release ]; do sleep 0.05; done",
          ].join("\n"),
        },
      ]),
    );
    await until("run A holds its /tmp", () => existsSync(join(folderA, "ready")), 30_000);
    // Run B cannot open A's folder, but the runner reads B's $RUNYARD_OUTPUT outside the sandbox:
    // B points it at A's file by the host path its own mountinfo gives away.
    const runB = await submit(
      workflow([
        {
          name: "snoop",
          env: { OTHER_RUN: runA },
          script: [
            `mine=$(awk '$5 == "/tmp" { print $4 }' /proc/self/mountinfo)`,
            'ln -sf "$(dirname "$(dirname "$mine")")/$OTHER_RUN/tmp/a.env" "$RUNYARD_OUTPUT"',
            'echo linked-to="$(readlink "$RUNYARD_OUTPUT")"',
          ].join("\n"),
        },
      ]),
    );
    const viewB = await waitForRun(up.url, runB, ended);
    writeFileSync(join(folderA, "release"), "");
    await waitForRun(up.url, runA, ended);
    const outputB = await outputOf(runB);
    // The link was made, to A's folder: the attempt was real.
    expect(outputB).toContain(`linked-to=${hostTmpOf(runA)}/a.env\n`);
    expect(JSON.stringify(viewB.vars)).not.toContain("tmp-secret-of-a");
    const eventsB = JSON.stringify(await readEvents(up.url, runB));
    expect(eventsB).not.toContain("tmp-secret-of-a");
    // The step is told why its file was not read.
    expect(eventsB).toContain("$RUNYARD_OUTPUT: it is a symbolic link");
  });

  it("is out of reach through output_path: a step cannot have the runner write into run A's /tmp", async () => {
    const folderA = join(up.listed, "run-a-planted");
    mkdirSync(folderA);
    const runA = await submit(
      workflow([
        {
          name: "hold",
          cwd: folderA,
          script: [
            "touch ready",
            "while [ ! -e release ]; do sleep 0.05; done",
            "cat /tmp/*.log 2>/dev/null || echo nothing-planted",
          ].join("\n"),
        },
      ]),
    );
    await until("run A holds its /tmp", () => existsSync(join(folderA, "ready")), 30_000);
    // Run B names A's host folder (its own mountinfo gives the pattern away) as its output_path:
    // the runner, outside the sandbox, would write B's output there.
    const lines = workflow([{ name: "plant", script: "echo planted-by-b" }])
      .trimEnd()
      .split("\n");
    lines.splice(lines.indexOf("    args:") + 1, 0, `      output_path: ${hostTmpOf(runA)}`);
    const runB = await submit(`${lines.join("\n")}\n`);
    const viewB = await waitForRun(up.url, runB, ended);
    writeFileSync(join(folderA, "release"), "");
    const viewA = await waitForRun(up.url, runA, ended);
    const outputA = await outputOf(runA);
    expect(viewA.status, outputA).toBe("success");
    expect(outputA).not.toContain("planted-by-b");
    expect(outputA).toContain("nothing-planted");
    // B is refused, told why: output_path names a folder the sandbox hides.
    expect(viewB.status).toBe("failed");
    expect(JSON.stringify(await readEvents(up.url, runB))).toContain("output_path");
  });

  it("is removed once the run is over", async () => {
    const runId = await submit(
      workflow([{ name: "write", script: `echo leftover > /tmp/leftover.txt\n${printTmpSource}` }]),
    );
    const run = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(run.status, output).toBe("success");
    const folder = hostTmpOf(runId);
    // It was the run's own folder, not an empty /tmp that had nothing to remove.
    expect(output).toContain(`tmp-source=${folder}\n`);
    // Removed at the run's end (the server's `run_ended`), not hours later by the keep timer.
    await until("the run's /tmp is removed", () => !existsSync(folder), 13_000);
  });
});
