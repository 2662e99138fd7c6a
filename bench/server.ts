import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { silentLogger } from "../src/core/logger.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { ProcessExecutor } from "../src/exec/process.js";
import { runnerSocketPath } from "../src/runner/protocol.js";
import { RunnerDaemon } from "../src/runner/runner.js";
import { type RunningServer, startServer } from "../src/server/server.js";
import type { BenchRow } from "./table.js";

const admin = "ryt_bench_admin_token";
const trivial = "name: trivial\nsteps:\n  - name: s\n    command: /bin/echo hi\n";

async function withServer<T>(fn: (server: RunningServer, runnerToken: string) => Promise<T>): Promise<T> {
  const server = await startServer({
    host: "127.0.0.1",
    port: 0,
    home: mkdtempSync(join(tmpdir(), "runyard-bench-")),
    adminToken: admin,
    timings: { heartbeatMs: 2000, leaseMs: 10_000 },
    reconnectGraceMs: 1000,
    logger: silentLogger,
    version: "bench",
    warn: () => undefined,
  });
  const { secret } = await server.store.createToken({ kind: "runner", name: "bench" });
  try {
    return await fn(server, secret);
  } finally {
    await server.close();
  }
}

async function withRunner<T>(url: string, token: string, capacity: number, fn: () => Promise<T>): Promise<T> {
  const runner = new RunnerDaemon({
    serverUrl: url,
    token,
    info: {
      id: "bench-runner",
      group: "default",
      labels: [],
      mode: "all",
      capacity,
      cpus: null,
      memory: null,
      hostname: "bench",
      tenant_id: null,
      version: null,
    },
    stepRunner: new LocalStepRunner(new ProcessExecutor(), {
      baseEnv: process.env as Record<string, string>,
      killGraceMs: 1000,
    }),
    logger: silentLogger,
  });
  await runner.start();
  try {
    return await fn();
  } finally {
    await runner.stop(0);
  }
}

async function submit(url: string): Promise<string> {
  const response = await fetch(`${url}/api/runs`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ workflow: trivial }),
  });
  return ((await response.json()) as { run_id: string }).run_id;
}

/** Reads the run's SSE stream; resolves the time of the first output byte and of the end. */
async function follow(url: string, runId: string): Promise<{ firstOutput: number; end: number }> {
  const response = await fetch(`${url}/api/runs/${runId}/events?access_token=${admin}`);
  let firstOutput = 0;
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    if (!firstOutput && text.includes('"type":"step.output"')) firstOutput = performance.now();
  }
  return { firstOutput, end: performance.now() };
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
};

/**
 * Submit -> first output byte at an SSE client, over 1,000 trivial runs with one idle runner.
 * Server, runner and client are three processes, as deployed.
 */
export async function firstByteLatency(): Promise<BenchRow[]> {
  const server = await serverProcess();
  const runner = spawn(
    process.execPath,
    [cli, "runner", "--server", server.url, "--token", server.runnerToken, "--capacity", "1"],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  try {
    await new Promise<void>((resolve) =>
      runner.stdout?.on("data", (c: Buffer) => String(c).includes("connected") && resolve()),
    );
    {
      const latencies: number[] = [];
      for (let i = 0; i < 1000; i++) {
        const start = performance.now();
        const runId = await submit(server.url);
        const { firstOutput } = await follow(server.url, runId);
        latencies.push(firstOutput - start);
      }
      const p50 = percentile(latencies, 50);
      const p99 = percentile(latencies, 99);
      return [
        {
          name: "submit -> first output byte, p50 (1,000 runs)",
          measured: `${p50.toFixed(1)} ms`,
          baseline: "10 ms target",
          ratio: p50 / 10,
          target: "<= 1",
        },
        {
          name: "submit -> first output byte, p99",
          measured: `${p99.toFixed(1)} ms`,
          baseline: "-",
          ratio: p99 / p50,
          target: "<= 10",
        },
      ];
    }
  } finally {
    runner.kill();
    server.child.kill();
  }
}

const cli = fileURLToPath(new URL("../../bin/runyard.js", import.meta.url));

/** `runyard server` as a child process, with a runner token made for it. */
async function serverProcess(
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string; runnerToken: string }> {
  const home = mkdtempSync(join(tmpdir(), "runyard-bench-"));
  const child = spawn(process.execPath, [cli, "server", "--port", "0", "--home", home], {
    env: { ...process.env, RUNYARD_ADMIN_TOKEN: admin, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      const match = String(chunk).match(/listening on (\S+)/);
      if (match?.[1]) resolve(match[1]);
    });
  });
  const created = await fetch(`${url}/api/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ kind: "runner", name: "bench" }),
  });
  const { token } = (await created.json()) as { token: string };
  return { child, url, runnerToken: token };
}

function spawnDirect(): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn("/bin/echo", ["hi"], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.resume();
    child.on("close", () => resolve());
  });
}

/** Trivial runs per second through server and runner, against spawning the command directly. */
export async function runThroughput(): Promise<BenchRow> {
  const count = 300;
  const direct = performance.now();
  for (let i = 0; i < count; i++) await spawnDirect();
  const directRate = count / ((performance.now() - direct) / 1000);
  const rate = await withServer((server, token) =>
    withRunner(server.url, token, 4, async () => {
      const start = performance.now();
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push(await submit(server.url));
      await Promise.all(ids.map((id) => follow(server.url, id)));
      return count / ((performance.now() - start) / 1000);
    }),
  );
  return {
    name: "trivial runs/s through server+runner vs direct spawn",
    measured: `${rate.toFixed(0)} runs/s`,
    baseline: `${directRate.toFixed(0)} spawns/s`,
    ratio: rate / directRate,
    target: ">= 0.1",
  };
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024;
}

/** Server memory with 500 idle runners connected (simulated clients in this process). */
export async function idleRunnerMemory(): Promise<BenchRow> {
  const { child, url, runnerToken: token } = await serverProcess({ RUNYARD_HEARTBEAT_MS: "5000" });
  const pid = child.pid ?? 0;
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const idle = rssOf(pid);
    const sockets: WebSocket[] = [];
    for (let i = 0; i < 500; i++) {
      const socket = new WebSocket(url.replace("http", "ws") + runnerSocketPath, {
        headers: { authorization: `Bearer ${token}` },
      });
      await new Promise<void>((resolve, reject) => {
        socket.on("open", () => {
          socket.send(
            JSON.stringify({ type: "hello", runner: { id: `sim-${i}`, hostname: "sim", capacity: 1 } }),
          );
        });
        socket.on("message", () => resolve());
        socket.on("error", reject);
      });
      sockets.push(socket);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const loaded = rssOf(pid);
    for (const socket of sockets) socket.close();
    return {
      name: "server RSS with 500 idle runners vs none",
      measured: `${(loaded / 1048576).toFixed(0)} MB (${((loaded - idle) / 500 / 1024).toFixed(0)} KB/runner)`,
      baseline: `${(idle / 1048576).toFixed(0)} MB`,
      ratio: loaded / idle,
      target: "<= 2",
    };
  } finally {
    child.kill();
  }
}
