import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { silentLogger } from "../src/core/logger.js";
import { runnerSocketPath } from "../src/core/protocol.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { StepJobHandler } from "../src/runner/handlers/step.js";
import { RunnerDaemon } from "../src/runner/runner.js";
import { type RunningServer, startServer } from "../src/server/server.js";
import type { BenchRow } from "./table.js";

export const admin = "ryt_bench_admin_token";
const trivial = "name: trivial\nsteps:\n  - name: s\n    command: /bin/echo hi\n";

/**
 * Which store a scenario's server runs on: the SQLite file in a fresh home (the default), or a
 * PostgreSQL database (`RUNYARD_DATABASE_URL`). Scenarios take it so that the SQLite and the
 * PostgreSQL rows go through the same code.
 */
export type BenchStore = { kind: "sqlite" } | { kind: "postgres"; databaseUrl: string };

export const sqliteStore: BenchStore = { kind: "sqlite" };

/** The secret key of every PostgreSQL bench server, so that replicas read each other's jobs. */
export const benchSecretKey = "runyard-bench-secret-key-0123456789abcdef";

/** An in-process server on `store`; its home is a fresh temp folder either way (secret.key). */
export async function startBenchServer(store: BenchStore): Promise<RunningServer> {
  return startServer({
    host: "127.0.0.1",
    port: 0,
    home: mkdtempSync(join(tmpdir(), "runyard-bench-")),
    adminToken: admin,
    // Replicas on one database must share the key (docs/scale.md): each fresh home would make its own.
    ...(store.kind === "postgres" ? { databaseUrl: store.databaseUrl, secretKey: benchSecretKey } : {}),
    timings: { heartbeatMs: 2000, leaseMs: 10_000 },
    reconnectGraceMs: 1000,
    logger: silentLogger,
    version: "bench",
    warn: () => undefined,
  });
}

async function withServer<T>(
  store: BenchStore,
  fn: (server: RunningServer, runnerToken: string) => Promise<T>,
): Promise<T> {
  const server = await startBenchServer(store);
  try {
    const { secret } = await server.store.tokens.create({ kind: "runner", name: "bench" });
    return await fn(server, secret);
  } finally {
    await server.close();
  }
}

/** An in-process runner connected to `url` for the time of `fn`. */
export async function withRunner<T>(
  url: string,
  token: string,
  capacity: number,
  fn: () => Promise<T>,
  id = "bench-runner",
): Promise<T> {
  const executor = createExecutor({ baseEnv: process.env });
  const runner = new RunnerDaemon({
    serverUrls: [url],
    token,
    info: {
      id,
      group: "default",
      labels: [],
      mode: "all",
      capacity,
      cpus: null,
      memory: null,
      hostname: "bench",
      tenant_id: null,
      version: null,
      shared: false,
      isolation: "none",
    },
    handlers: {
      step: new StepJobHandler(
        new LocalStepRunner(executor, {
          killGraceMs: 1000,
        }),
      ),
    },
    logger: silentLogger,
  });
  await runner.start();
  try {
    return await fn();
  } finally {
    await runner.stop(0);
    executor.close();
  }
}

export async function submit(url: string, workflow = trivial): Promise<string> {
  const response = await fetch(`${url}/api/runs`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ workflow }),
  });
  return ((await response.json()) as { run_id: string }).run_id;
}

/** Reads the run's SSE stream; resolves the time of the first output byte and of the end. */
export async function follow(
  url: string,
  runId: string,
  signal?: AbortSignal,
): Promise<{ firstOutput: number; end: number }> {
  const response = await fetch(
    `${url}/api/runs/${runId}/events?access_token=${admin}`,
    signal ? { signal } : {},
  );
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

/** Submit -> first output byte, in ms, of `count` trivial runs one after another. */
export interface FirstByteFigures {
  p50: number;
  p95: number;
  p99: number;
}

/**
 * Submit -> first output byte at an SSE client of `count` trivial runs, one after another, with
 * one idle runner. Server, runner and client are three processes, as deployed; the server's
 * store is `store`.
 */
export async function measureFirstByte(store: BenchStore, count: number): Promise<FirstByteFigures> {
  const server = await serverProcess({}, store);
  try {
    const runner = await runnerProcess(server.url, server.runnerToken);
    try {
      const latencies: number[] = [];
      for (let i = 0; i < count; i++) {
        const start = performance.now();
        const runId = await submit(server.url);
        const { firstOutput } = await follow(server.url, runId);
        latencies.push(firstOutput - start);
      }
      return {
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        p99: percentile(latencies, 99),
      };
    } finally {
      runner.kill();
    }
  } finally {
    server.child.kill();
  }
}

/**
 * Submit -> first output byte at an SSE client, over 1,000 trivial runs with one idle runner,
 * against spawning the command directly and reading its first byte.
 */
export async function firstByteLatency(): Promise<BenchRow[]> {
  const directP50 = directSpawns(1000).firstByteP50;
  const { p50, p99 } = await measureFirstByte(sqliteStore, 1000);
  return [
    {
      name: "submit -> first output byte at an SSE client, p50 (1,000 runs)",
      measured: `${p50.toFixed(1)} ms`,
      baseline: `${directP50.toFixed(1)} ms direct spawn`,
      ratio: p50 / directP50,
      target: "<= 2",
    },
    {
      name: "submit -> first output byte, p99 vs p50",
      measured: `${p99.toFixed(1)} ms`,
      baseline: `${p50.toFixed(1)} ms`,
      ratio: p99 / p50,
      target: "<= 10",
    },
  ];
}

/**
 * The floor: a fresh Node process spawning `/bin/echo hi` `count` times, one after another,
 * reading each first byte. Fresh, because a process whose heap the other benches have grown
 * forks slower, and the baseline would then depend on the order of the benches.
 */
function directSpawns(count: number): { firstByteP50: number; perSecond: number } {
  const script = `
    const { spawn } = require("node:child_process");
    const firsts = [];
    const once = () => new Promise((resolve) => {
      const start = performance.now();
      const child = spawn("/bin/echo", ["hi"], { stdio: ["ignore", "pipe", "ignore"] });
      child.stdout.once("data", () => firsts.push(performance.now() - start));
      child.stdout.resume();
      child.on("close", resolve);
    });
    (async () => {
      const start = performance.now();
      for (let i = 0; i < ${count}; i++) await once();
      const seconds = (performance.now() - start) / 1000;
      firsts.sort((a, b) => a - b);
      console.log(JSON.stringify({ firstByteP50: firsts[Math.floor(firsts.length / 2)], perSecond: ${count} / seconds }));
    })();
  `;
  const result = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
  return JSON.parse(result.stdout) as { firstByteP50: number; perSecond: number };
}

const cli = fileURLToPath(new URL("../../bin/runyard.js", import.meta.url));

/** Daemons started by benches log nothing: the bench prints only its table. */
const quiet = { RUNYARD_LOG_LEVEL: "silent" };

/**
 * `runyard server` as a child process on `store`, with a runner token made for it. Rejects when
 * the process ends before it listens (e.g. `dist/` not built: run `npm run build` first).
 */
export async function serverProcess(
  env: Record<string, string> = {},
  store: BenchStore = sqliteStore,
): Promise<{ child: ChildProcess; url: string; runnerToken: string }> {
  const home = mkdtempSync(join(tmpdir(), "runyard-bench-"));
  const base: NodeJS.ProcessEnv = { ...process.env };
  // The SQLite rows must not land on a database the caller's shell happens to point at.
  delete base.RUNYARD_DATABASE_URL;
  if (store.kind === "postgres") base.RUNYARD_DATABASE_URL = store.databaseUrl;
  const child = spawn(process.execPath, [cli, "server", "--port", "0", "--home", home], {
    env: { ...base, ...quiet, RUNYARD_ADMIN_TOKEN: admin, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + String(chunk)).slice(-2000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      const match = String(chunk).match(/listening on (\S+)/);
      if (match?.[1]) resolve(match[1]);
    });
    child.once("exit", (code) =>
      reject(new Error(`runyard server ended (${code}) before listening (built? npm run build): ${stderr}`)),
    );
  });
  const created = await fetch(`${url}/api/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ kind: "runner", name: "bench" }),
  });
  const { token } = (await created.json()) as { token: string };
  return { child, url, runnerToken: token };
}

/** `runyard runner` as a child process; resolves once it is connected. `args` go after the defaults. */
export async function runnerProcess(
  url: string,
  token: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<ChildProcess> {
  const runner = spawn(
    process.execPath,
    [cli, "runner", "--server", url, "--token", token, "--capacity", "1", ...args],
    {
      env: { ...process.env, ...quiet, ...env },
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  await new Promise<void>((resolve) =>
    runner.stdout?.on("data", (c: Buffer) => String(c).includes("connected") && resolve()),
  );
  return runner;
}

/**
 * Trivial runs per second: `count` runs submitted one after another and followed to their end
 * over SSE, through an in-process server on `store` and an in-process runner of capacity 4.
 */
export async function measureRunThroughput(store: BenchStore, count: number): Promise<number> {
  return withServer(store, (server, token) =>
    withRunner(server.url, token, 4, async () => {
      const start = performance.now();
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push(await submit(server.url));
      await Promise.all(ids.map((id) => follow(server.url, id)));
      return count / ((performance.now() - start) / 1000);
    }),
  );
}

/** Trivial runs per second through server and runner, against spawning the command directly. */
export async function runThroughput(): Promise<BenchRow> {
  const count = 300;
  const directRate = directSpawns(count).perSecond;
  const rate = await measureRunThroughput(sqliteStore, count);
  return {
    name: "trivial runs/s through server+runner vs direct spawn",
    measured: `${rate.toFixed(0)} runs/s`,
    baseline: `${directRate.toFixed(0)} spawns/s`,
    ratio: rate / directRate,
    target: ">= 0.5",
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

/** An SSE client that sends its request and never reads a byte of the answer. */
function idleSseClient(url: string, runId: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET /api/runs/${runId}/events HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${admin}\r\n\r\n`,
      );
      socket.pause();
      resolve(socket);
    });
    socket.on("error", reject);
  });
}

async function runStatus(url: string, runId: string): Promise<string> {
  const response = await fetch(`${url}/api/runs/${runId}`, { headers: { authorization: `Bearer ${admin}` } });
  return ((await response.json()) as { status: string }).status;
}

/**
 * Server RSS growth with 5 SSE clients that never read, on a run that prints 200 MB: they
 * follow it live, and 5 more join once it has finished. Server and runner are processes.
 */
export async function idleSseMemory(): Promise<BenchRow> {
  const timings = { RUNYARD_HEARTBEAT_MS: "2000", RUNYARD_LEASE_MS: "10000" };
  const server = await serverProcess({ ...timings, RUNYARD_MAX_RUN_LOG_BYTES: String(300 * 1024 * 1024) });
  const runner = await runnerProcess(server.url, server.runnerToken, timings);
  const pid = server.child.pid ?? 0;
  const sockets: Socket[] = [];
  try {
    const idle = rssOf(pid);
    let peak = idle;
    const sample = async (): Promise<void> => {
      peak = Math.max(peak, rssOf(pid));
      await new Promise((resolve) => setTimeout(resolve, 100));
    };
    const big =
      "name: big\nsteps:\n  - name: print\n    action: shell.run\n    args:\n      script: yes 'runyard-bench-0123456789abcdef0123456789abcdef0123456789abcdef' | head -c 200000000\n";
    const runId = await submit(server.url, big);
    for (let i = 0; i < 5; i++) sockets.push(await idleSseClient(server.url, runId));
    let status = "queued";
    while (status === "queued" || status === "running") {
      await sample();
      status = await runStatus(server.url, runId);
    }
    for (let i = 0; i < 5; i++) sockets.push(await idleSseClient(server.url, runId));
    for (let i = 0; i < 20; i++) await sample();
    const growth = (peak - idle) / 1048576;
    return {
      name: `server RSS growth, 5 idle SSE clients on a 200 MB run (${status})`,
      measured: `+${growth.toFixed(0)} MB`,
      baseline: `${(idle / 1048576).toFixed(0)} MB idle`,
      ratio: growth / 100,
      target: "<= 1",
    };
  } finally {
    for (const socket of sockets) socket.destroy();
    runner.kill();
    server.child.kill();
  }
}
