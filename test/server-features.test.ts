import { createServer, type IncomingMessage } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { signBody } from "../src/server/notifier.js";
import { runCli, tempDir } from "./helpers/cli.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  runnerToken,
  startCli,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

interface Hook {
  url: string;
  received: Array<{ body: Record<string, unknown>; signature: string | undefined; raw: string }>;
  close: () => Promise<void>;
}

/** A webhook receiver on loopback that answers `status`. */
async function webhook(status: number): Promise<Hook> {
  const received: Hook["received"] = [];
  const server = createServer((request: IncomingMessage, response) => {
    let raw = "";
    request.on("data", (chunk) => {
      raw += chunk;
    });
    request.on("end", () => {
      received.push({
        body: JSON.parse(raw),
        signature: request.headers["x-runyard-signature"] as string,
        raw,
      });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe("server features", () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
  });
  /** The server (and its runner) the tests that do not restart or stop it share. */
  let server: TestServer;
  let runner: Proc;
  beforeAll(async () => {
    server = await startTestServer();
    runner = await startRunner(server.url, await runnerToken(server.url), { id: "n1" });
  });
  afterAll(async () => {
    await Promise.all([runner?.kill(), server?.proc.kill()]);
  });

  it("notifies webhooks of every state change with the notifier's fields, signed", async () => {
    const hook = await webhook(200);
    try {
      const runId = await submit(
        server.url,
        `name: notified\nnotify:\n  url: ${hook.url}\n  secret: hook-secret\nsteps:\n  - name: s\n    command: echo hi\n`,
      );
      await waitForRun(server.url, runId, isFinal);
      await expect
        .poll(() => hook.received.some((r) => r.body.status === "success" && r.body.step === null))
        .toBe(true);
      const statuses = hook.received.map((r) => `${r.body.status}:${r.body.step ?? "-"}`);
      expect(statuses).toEqual(
        expect.arrayContaining(["queued:-", "running:-", "running:s", "success:s", "success:-"]),
      );
      const first = hook.received[0];
      expect(Object.keys(first?.body ?? {}).sort()).toEqual(
        ["error", "host", "run_id", "status", "step", "timestamp", "version", "workflow_name"].sort(),
      );
      expect(first?.signature).toBe(signBody("hook-secret", first?.raw ?? ""));
    } finally {
      await hook.close();
    }
  });

  it("records a failing webhook as last_notify_error without changing the run", async () => {
    const hook = await webhook(500);
    try {
      const runId = await submit(
        server.url,
        `name: unlucky\nnotify:\n  url: ${hook.url}\n  retry: 1\n  delay: 10ms\nsteps:\n  - name: s\n    command: echo hi\n`,
      );
      const run = await waitForRun(server.url, runId, isFinal);
      expect(run.status).toBe("success");
      await expect
        .poll(
          async () =>
            (
              await api<{ last_notify_error: string | null }>(
                server.url,
                "GET",
                `/run-status?run_id=${runId}`,
              )
            ).body.last_notify_error,
        )
        .toMatch(/notify failed after 2 attempts: .* answered HTTP 500/);
    } finally {
      await hook.close();
    }
  });

  it("takes runner settings from the ADOS runner's ADOS_* variables", async () => {
    const token = await runnerToken(server.url);
    const runner = startCli(["runner"], {
      ADOS_API_URL: server.url,
      ADOS_TOKEN: token,
      ADOS_RUNNER_ID: "runner-001",
      ADOS_GROUP: "frontend-runners",
      ADOS_MODE: "issue",
      ADOS_CPUS: "4",
      ADOS_MEMORY: "8GB",
      ADOS_HOSTNAME: "server-01",
      WORKSPACE_DIR: tempDir(),
    });
    procs.push(runner);
    await runner.waitFor("runner runner-001 connected");
    const { body } = await api<Array<Record<string, unknown>>>(server.url, "GET", "/api/runners");
    expect(body.find((r) => r.id === "runner-001")).toMatchObject({
      group: "frontend-runners",
      mode: "issue",
      cpus: 4,
      memory: "8GB",
      hostname: "server-01",
      status: "connected",
    });
  });

  it("refuses a runner whose token is wrong, with a hint, and exits 2", async () => {
    const runner = startCli(["runner", "--server", server.url, "--token", "not-a-token", "--id", "bad"]);
    expect(await runner.exited).toBe(2);
    expect(runner.output()).toContain("refused the runner token");
  });

  it("runyard up runs a workflow submitted with --server and keeps it across restarts", async () => {
    const home = tempDir();
    const port = await freePort();
    const up = startCli(["up", "--port", String(port), "--home", home], { RUNYARD_ADMIN_TOKEN: adminToken });
    procs.push(up);
    await up.waitFor("local runner connected");
    const url = `http://127.0.0.1:${port}`;
    const result = await runCli(["run", "examples/simple.yaml", "--server", url, "--json"], {
      env: { RUNYARD_TOKEN: adminToken },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('"data":"hello\\n"');
    await up.kill();
    const again = startCli(["up", "--port", String(port), "--home", home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    procs.push(again);
    await again.waitFor("local runner connected");
    const list = await runCli(["runs", "list", "--server", url], { env: { RUNYARD_TOKEN: adminToken } });
    expect(list.stdout).toMatch(/run_\w+\s+success\s+simple/);
  });

  it("prints the admin token once on first start and stores only its hash", async () => {
    const home = tempDir();
    const port = await freePort();
    const first = startCli(["server", "--port", String(port), "--home", home]);
    const line = await first.waitFor(/RUNYARD_TOKEN=\S+/);
    const token = line.split("=")[1] ?? "";
    expect((await api(`http://127.0.0.1:${port}`, "GET", "/api/runs", undefined, token)).status).toBe(200);
    await first.kill();
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(`${home}/runyard.db`).includes(token)).toBe(false);
    const second = startCli(["server", "--port", String(port), "--home", home]);
    procs.push(second);
    await second.waitFor("listening on");
    expect(second.output()).not.toContain("RUNYARD_TOKEN=");
  });

  it("shows the admin token on the first start that listens, after a first try on a busy port", async () => {
    const home = tempDir();
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const address = busy.address();
    const busyPort = typeof address === "object" && address ? address.port : 0;
    const failed = await runCli(["server", "--port", String(busyPort), "--home", home]);
    busy.close();
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain("already in use");
    expect(failed.stdout).not.toContain("RUNYARD_TOKEN=");
    const port = await freePort();
    const second = startCli(["server", "--port", String(port), "--home", home]);
    procs.push(second);
    const line = await second.waitFor(/RUNYARD_TOKEN=\S+/);
    const token = line.split("=")[1] ?? "";
    expect((await api(`http://127.0.0.1:${port}`, "GET", "/api/runs", undefined, token)).status).toBe(200);
  });

  it("tells a later start how to recover a lost admin token, and the recovery works", async () => {
    const home = tempDir();
    const port = await freePort();
    const first = startCli(["server", "--port", String(port), "--home", home]);
    await first.waitFor(/RUNYARD_TOKEN=\S+/);
    await first.kill();
    const second = startCli(["server", "--port", String(port), "--home", home]);
    await second.waitFor("admin token:");
    expect(second.output()).toContain(`runyard token create --admin --home ${home}`);
    await second.kill();
    const made = await runCli(["token", "create", "--admin", "--home", home], { env: { RUNYARD_TOKEN: "" } });
    expect(made.code).toBe(0);
    const recovered = made.stdout.trim();
    const third = startCli(["server", "--port", String(port), "--home", home]);
    procs.push(third);
    await third.waitFor("listening on");
    expect((await api(`http://127.0.0.1:${port}`, "GET", "/api/users", undefined, recovered)).status).toBe(
      200,
    );
  });

  it("warns that an in-memory server keeps nothing", async () => {
    const port = await freePort();
    const server = startCli(["server", "--memory", "--port", String(port)], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    procs.push(server);
    await server.waitFor("listening on");
    expect(server.output()).toContain(
      "in-memory store: runs, events and tokens are lost when this process exits",
    );
  });

  it("dispatches a server run's address host to an agent-server", async () => {
    const agentPort = await freePort();
    const agent = startCli(["agent-server", "--addr", `127.0.0.1:${agentPort}`, "--token", "agent-token"]);
    procs.push(agent);
    await agent.waitFor("listening on");
    const server = await startTestServer();
    procs.push(server.proc);
    const runId = await submit(
      server.url,
      `name: direct\ninventory:\n  hosts:\n    far: {address: "http://127.0.0.1:${agentPort}", token: agent-token}\nsteps:\n  - name: s\n    action: shell.run\n    args:\n      export_vars: true\n      script: echo "BOPS_EXPORT:FROM=$RUNYARD_HOST"\n`,
    );
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("success");
    expect(run.vars.FROM).toBe("far");
  });
});
