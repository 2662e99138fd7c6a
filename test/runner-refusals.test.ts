import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { runnerSocketPath, type ServerMessage } from "../src/core/protocol.js";
import { runCli, tempDir } from "./helpers/cli.js";
import { until } from "./helpers/processes.js";
import {
  adminToken,
  api,
  type Proc,
  type RunView,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/**
 * Runners that cannot do a job: a runner told `--labels docker` on a machine without Docker
 * never draws bots, and a job a runner refuses backs off and fails with the reasons.
 */

let server: TestServer;
let cliEnv: Record<string, string>;
const procs: Proc[] = [];
const sockets: WebSocket[] = [];

beforeAll(async () => {
  server = await startTestServer();
  cliEnv = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken };
}, 60_000);

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  for (const proc of procs.splice(0)) await proc.kill();
});

afterAll(async () => {
  await server?.proc.kill();
});

interface RunWithNeeds extends RunView {
  last_seq: number;
  waiting_for?: Array<{ host: string; labels: string[]; reason: string | null }>;
}

/**
 * A runner written by hand, as a runner of another version or a broken one would speak:
 * it says hello with `runner` (labels, kinds) and answers every job it is assigned with `refuse`.
 */
async function craftedRunner(
  token: string,
  runner: Record<string, unknown>,
): Promise<{ socket: WebSocket; assigned: string[] }> {
  const socket = new WebSocket(new URL(runnerSocketPath, server.url.replace(/^http/, "ws")), {
    headers: { authorization: `Bearer ${token}` },
  });
  sockets.push(socket);
  const assigned: string[] = [];
  let welcomed = false;
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as ServerMessage;
    if (message.type === "welcome") welcomed = true;
    if (message.type === "heartbeat") socket.send(JSON.stringify({ type: "heartbeat", bots: [] }));
    if (message.type === "assign") {
      assigned.push(message.job.job_id);
      socket.send(
        JSON.stringify({
          type: "refuse",
          job_id: message.job.job_id,
          reason: "cannot run bot jobs: its Docker engine is gone",
        }),
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  socket.send(JSON.stringify({ type: "hello", runner: { hostname: "crafted", ...runner }, jobs: [] }));
  await until("the crafted runner is welcomed", () => welcomed);
  return { socket, assigned };
}

async function waitForRunnerStatus(id: string, status: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { body } = await api<Array<{ id: string; status: string }>>(server.url, "GET", "/api/runners");
    if (body.find((runner) => runner.id === id)?.status === status) return;
    if (Date.now() > deadline) throw new Error(`runner ${id} never became ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("a runner claims only the jobs it can run", () => {
  it("drops --labels docker without a reachable Docker engine, and a bot stays queued instead of looping on it", async () => {
    // Another runner with Docker was here once (it is offline now): the bot is accepted and waits.
    const { socket } = await craftedRunner(await runnerToken(server.url), {
      id: "docker-host-away",
      labels: ["docker"],
    });
    socket.close();
    await waitForRunnerStatus("docker-host-away", "offline");

    const deadSocket = join(tempDir(), "docker.sock");
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "no-docker",
      labels: "docker,linux",
      env: { DOCKER_HOST: `unix://${deadSocket}`, RUNYARD_LOG_LEVEL: "warn" },
    });
    procs.push(runner);
    expect(runner.output()).toContain(`dropped label docker: no Docker engine answers at ${deadSocket}`);
    expect(runner.output()).toContain("leave docker out of --labels");
    // Not on a terminal: every line it writes, status and log alike, is one JSON object.
    for (const line of runner.output().split("\n").filter(Boolean))
      expect(() => JSON.parse(line)).not.toThrow();
    const { body: runners } = await api<Array<{ id: string; labels: string[] }>>(
      server.url,
      "GET",
      "/api/runners",
    );
    expect(runners.find((r) => r.id === "no-docker")?.labels).toContain("linux");
    expect(runners.find((r) => r.id === "no-docker")?.labels).not.toContain("docker");

    const started = await api<{ run_id: string }>(server.url, "POST", "/api/bots", {
      name: "waits-for-docker",
      image: "busybox",
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const botRun = started.body.run_id;

    // A workflow queued after the bot runs on the same runner: the runner was offered work, and
    // the older bot job, had it been claimable by it, would have gone first.
    const flow = await submit(
      server.url,
      "name: after-the-bot\ninventory:\n  hosts:\n    h: {group: default, labels: [linux]}\nsteps:\n  - name: hi\n    targets: [h]\n    action: shell.run\n    args: {script: echo hi}\n",
    );
    expect(
      (await waitForRun(server.url, flow, (run) => run.status !== "queued" && run.status !== "running"))
        .status,
    ).toBe("success");

    const { body: run } = await api<RunWithNeeds>(server.url, "GET", `/api/runs/${botRun}`);
    expect(run.status).toBe("queued");
    expect(run.waiting_for?.[0]?.labels).toEqual(["docker"]);
    expect(run.waiting_for?.[0]?.reason).toContain("with labels [docker]");
    // Nothing piled up: the bot was never handed to the runner that cannot run it.
    expect(run.last_seq).toBeLessThan(10);
    expect(runner.output()).not.toContain("refused a bot job");
    await api(server.url, "POST", "/api/bots/waits-for-docker/stop");
  }, 120_000);
});

describe("the runner's output", () => {
  it("refuses to start with more labels than a runner may have, naming the cap", async () => {
    const labels = Array.from({ length: 65 }, (_, i) => `l${i}`).join(",");
    const started = await runCli(
      [
        "runner",
        "--server",
        server.url,
        "--token",
        await runnerToken(server.url),
        "--id",
        "many-labels",
        "--labels",
        labels,
      ],
      { env: { RUNYARD_HOME: tempDir(), RUNYARD_LOG_FORMAT: "text" } },
    );
    expect(started.code).not.toBe(0);
    expect(started.stdout + started.stderr).toContain("a runner may have at most 64 labels");
    const { body: runners } = await api<Array<{ id: string }>>(server.url, "GET", "/api/runners");
    expect(runners.map((r) => r.id)).not.toContain("many-labels");
  }, 60_000);

  it("is plain lines with RUNYARD_LOG_FORMAT=text, and says which agent label it dropped", async () => {
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "plain-lines",
      labels: "agent:nosuch",
      env: { RUNYARD_LOG_FORMAT: "text", RUNYARD_LOG_LEVEL: "warn" },
    });
    procs.push(runner);
    // Said on stderr, the connection on stdout: the two pipes are read in no set order.
    await runner.waitFor("dropped label agent:nosuch");
    expect(runner.output()).toMatch(
      /^\S+Z WARN {2}dropped label agent:nosuch: runyard knows no agent named nosuch \(known: [^)]+\); leave agent:nosuch out of --labels/m,
    );
    expect(runner.output()).toContain(
      `runner plain-lines connected to ${server.url} (group default, capacity 2)\n`,
    );
    expect(runner.output()).not.toMatch(/^\{/m);
  }, 60_000);
});

describe("a job its runners refuse", () => {
  it("is offered again after a growing back-off and fails JOB_REFUSED after three refusals, with the reasons", async () => {
    const token = await runnerToken(server.url);
    // It says it runs bots and has Docker, then refuses each one it is given.
    const crafted = await craftedRunner(token, {
      id: "refuses-bots",
      labels: ["docker"],
      kinds: ["step", "agent", "bot"],
    });
    const since = Date.now();
    const started = await api<{ run_id: string }>(server.url, "POST", "/api/bots", {
      name: "refused-bot",
      image: "busybox",
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const runId = started.body.run_id;

    const run = (await waitForRun(
      server.url,
      runId,
      (r) => r.status !== "queued" && r.status !== "running",
      60_000,
    )) as RunWithNeeds;
    const took = Date.now() - since;
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("JOB_REFUSED");
    expect(run.error?.message).toContain(
      "runner refuses-bots: cannot run bot jobs: its Docker engine is gone (3 times)",
    );
    // Three offers, one job: 1 s and 2 s of back-off between them, then the end.
    expect(crafted.assigned).toHaveLength(3);
    expect(new Set(crafted.assigned).size).toBe(1);
    expect(took).toBeGreaterThanOrEqual(3000);
    // A fourth offer is ruled out by the count above; this only says it ended, not offered on.
    expect(took).toBeLessThan(45_000);
    expect(run.last_seq).toBeLessThan(10);

    const shown = await runCli(["runs", "show", runId], { env: cliEnv });
    expect(shown.stdout + shown.stderr).toContain("JOB_REFUSED");
    expect(shown.stdout + shown.stderr).toContain("its Docker engine is gone");
    const status = await runCli(["bot", "status", "refused-bot"], { env: cliEnv });
    expect(status.stdout + status.stderr).toContain("JOB_REFUSED");
    expect(status.stdout + status.stderr).toContain("its Docker engine is gone");
  }, 60_000);
});
