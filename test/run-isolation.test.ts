import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { until } from "./helpers/processes.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { api, type RunView, readEvents, waitForRun } from "./helpers/server.js";
import { startModelServer, turns } from "./model-server/server.js";

/**
 * What a step of an ordinary user can reach on `runyard up`'s local runner: the attack of the
 * issue (read the home's secret.key, take RUNYARD_ADMIN_TOKEN from the server's /proc environ,
 * rewrite the SQLite file) and a concurrent run's env and folder, each tried by the step's own
 * shell code.
 */
let up: SandboxedUp & { listed: string };
const sockets: Server[] = [];

beforeAll(async () => {
  // One `up` for the file; each test works in folders of its own. Members' steps name their
  // folders under a root the operator lists (step_cwd_roots).
  const listed = tempDir("runyard-listed-");
  up = { ...(await startSandboxedUp({ RUNYARD_STEP_CWD_ROOTS: listed })), listed };
});

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.close();
});

afterAll(async () => {
  await up?.proc.kill();
});

async function submitAs(token: string, workflow: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    up.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow, vars: {} },
    token,
  );
  if (status !== 201) throw new Error(`submit failed: ${status} ${JSON.stringify(body)}`);
  return body.run_id;
}

async function outputOf(runId: string): Promise<string> {
  const events = await readEvents(up.url, runId);
  return events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
}

/** A unix socket listening outside any sandbox, answering "connected" to whoever reaches it. */
async function listeningSocket(path: string): Promise<void> {
  const server = createServer((socket) => socket.end("connected\n"));
  sockets.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
}

/** A workflow of shell.run steps on the local runner. */
function workflow(
  steps: Array<{ name: string; script: string; env?: Record<string, string>; cwd?: string }>,
): string {
  const lines = ["version: v0.1", "name: isolation", "inventory:", "  hosts:", "    local: {}", "steps:"];
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

describe("a step of a user outside any tenant on `runyard up`", () => {
  it("cannot read the home, the server's environment, the database or a unix socket of the host, and stays a member", async () => {
    const socketPath = join(tempDir(), "host.sock");
    await listeningSocket(socketPath);
    const upPid = up.proc.child.pid!;
    const database = join(up.home, "runyard.db");
    expect(existsSync(join(up.home, "secret.key"))).toBe(true);
    expect(existsSync(database)).toBe(true);
    const script = [
      `cat ${join(up.home, "secret.key")} >/dev/null 2>&1 && echo LEAK-secret-key || echo no-secret-key`,
      `cat /proc/${upPid}/environ >/dev/null 2>&1 && echo LEAK-up-environ || echo no-up-environ`,
      `for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f"; done 2>/dev/null | grep -q '^RUNYARD_ADMIN_TOKEN=' && echo LEAK-admin-token || echo no-admin-token`,
      `python3 -c "import sqlite3; db = sqlite3.connect('file:${database}?mode=rw', uri=True); db.execute(\\"update users set role = 'admin'\\"); db.commit()" 2>/dev/null && echo LEAK-database || echo no-database`,
      `python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.connect('${socketPath}'); print(s.recv(99))" 2>/dev/null && echo LEAK-socket || echo no-socket`,
      "ls /var/run/docker.sock /run/docker.sock >/dev/null 2>&1 && echo LEAK-docker || echo no-docker",
      "echo done",
    ].join("\n");
    const runId = await submitAs(up.userToken, workflow([{ name: "attack", script }]));
    const run = await waitForRun(
      up.url,
      runId,
      (view: RunView) => view.status === "success" || view.status === "failed",
    );
    const output = await outputOf(runId);
    expect(run.status, output).toBe("success");
    expect(output).not.toContain("LEAK");
    for (const blocked of ["secret-key", "up-environ", "admin-token", "database", "socket", "docker"])
      expect(output).toContain(`no-${blocked}\n`);
    expect((await api(up.url, "GET", "/api/users", undefined, up.userToken)).status).toBe(403);
  });

  it("cannot find a concurrent run's secret in any process's environment nor read that run's folder", async () => {
    const folderA = join(up.listed, "run-a");
    const folderB = join(up.listed, "run-b");
    mkdirSync(folderA);
    mkdirSync(folderB);
    const secret = "hunter2-concurrent-secret";
    // Run A says it holds its secret by a file in its own folder, which the test watches, and
    // waits for a file the test writes there once run B has tried: no sleep stands in for either.
    const scriptA = [
      'echo "$HELD_SECRET" > secret.txt',
      "touch ready",
      "while [ ! -e release ]; do sleep 0.05; done",
      "echo a-released",
    ].join("\n");
    const runA = await submitAs(
      up.userToken,
      workflow([{ name: "hold", script: scriptA, cwd: folderA, env: { HELD_SECRET: secret } }]),
    );
    await until("run A holds its secret", () => existsSync(join(folderA, "ready")), 30_000);

    const scriptB = [
      `for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f"; done 2>/dev/null | grep -q '${secret.slice(0, 7)}' && echo LEAK-env || echo no-env`,
      `cat ${join(folderA, "secret.txt")} >/dev/null 2>&1 && echo LEAK-folder || echo no-folder`,
      `ls ${folderA} >/dev/null 2>&1 && echo LEAK-listing || echo no-listing`,
    ].join("\n");
    const runB = await submitAs(up.userToken, workflow([{ name: "snoop", script: scriptB, cwd: folderB }]));
    const viewB = await waitForRun(
      up.url,
      runB,
      (view) => view.status === "success" || view.status === "failed",
    );
    writeFileSync(join(folderA, "release"), "");
    const viewA = await waitForRun(
      up.url,
      runA,
      (view) => view.status === "success" || view.status === "failed",
    );

    const outputB = await outputOf(runB);
    expect(viewB.status, outputB).toBe("success");
    expect(outputB).not.toContain("LEAK");
    expect(outputB).toContain("no-env\n");
    expect(outputB).toContain("no-folder\n");
    expect(outputB).toContain("no-listing\n");
    expect(viewA.status).toBe("success");
    expect(await outputOf(runA)).toContain("a-released");
  });

  it("cannot reach the home or the server's environment from an agent's commands either", async () => {
    const attack = [
      `cat ${join(up.home, "secret.key")} >/dev/null 2>&1 && echo "LE""AK-secret-key" || echo "no""-secret-key"`,
      `for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f"; done 2>/dev/null | grep -q '^RUNYARD_ADMIN_TOKEN=' && echo "LE""AK-admin-token" || echo "no""-admin-token"`,
      // The runner's own state: its journal of process groups (its turn folders lie beneath).
      `cat ${join(up.home, "runners")}/*/process-groups.log >/dev/null 2>&1 && echo "LE""AK-runner-state" || echo "no""-runner-state"`,
      'echo "agent""-done"',
    ].join("; ");
    const model = await startModelServer(
      turns(
        { toolCalls: [{ name: "run_command", input: { command: attack }, id: "call_attack" }] },
        { text: "done" },
      ),
    );
    try {
      const { status, body } = await api<{ run_id: string }>(
        up.url,
        "POST",
        "/api/runs",
        {
          kind: "agent",
          agent: "openai",
          prompt: "look around",
          env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-isolation" },
        },
        up.userToken,
      );
      expect(status, JSON.stringify(body)).toBe(201);
      const run = await waitForRun(
        up.url,
        body.run_id,
        (view) => view.status === "success" || view.status === "failed",
        60_000,
      );
      const events = JSON.stringify(await readEvents(up.url, body.run_id));
      expect(run.status, events).toBe("success");
      expect(events).toContain("agent-done");
      // The command itself is in the events too: its markers are spelled in pieces there.
      expect(events).not.toContain("LEAK-");
      for (const blocked of ["secret-key", "admin-token", "runner-state"])
        expect(events).toContain(`no-${blocked}`);
    } finally {
      await model.stop();
    }
  });
});
