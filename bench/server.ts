import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { silentLogger } from "../src/core/logger.js";
import { runnerSocketPath } from "../src/core/protocol.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { StepJobHandler } from "../src/runner/handlers/step.js";
import { RunnerDaemon } from "../src/runner/runner.js";
import { type RunningServer, startServer } from "../src/server/server.js";
import type { TracingSettings } from "../src/server/tracing/tracing-settings.js";
import { cli, percentile, treeCpuMs } from "./processes.js";
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
export async function startBenchServer(store: BenchStore, tracing?: TracingSettings): Promise<RunningServer> {
  return startServer({
    ...(tracing ? { tracing } : {}),
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

export async function withServer<T>(
  store: BenchStore,
  fn: (server: RunningServer, runnerToken: string) => Promise<T>,
  tracing?: TracingSettings,
): Promise<T> {
  const server = await startBenchServer(store, tracing);
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

/** Submits `workflow`; rejects on any answer but a run id, so a refused run never counts as a figure. */
export async function submit(url: string, workflow = trivial): Promise<string> {
  const response = await fetch(`${url}/api/runs`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ workflow }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`POST /api/runs answered ${response.status}: ${text.slice(0, 300)}`);
  return (JSON.parse(text) as { run_id: string }).run_id;
}

/** What `follow` saw of one run's event stream. */
export interface Followed {
  /** performance.now() at the first `step.output` event (0 when none came). */
  firstOutput: number;
  /** performance.now() at the stream's end. */
  end: number;
  /** Bytes of the stream. */
  bytes: number;
  /** The run's status in its `run.finished` event. */
  status: string;
}

/**
 * Reads the run's SSE stream to its end; resolves the time of the first output byte and of the
 * end, and the status the run finished with. Keeps only a short tail of the text (a marker split
 * across chunks is still found) and of the bytes, so a 100 MB run costs this reader no more than
 * its bytes. Rejects when the stream does not open or ends without `run.finished`.
 */
export async function follow(url: string, runId: string, signal?: AbortSignal): Promise<Followed> {
  const response = await fetch(
    `${url}/api/runs/${runId}/events?access_token=${admin}`,
    signal ? { signal } : {},
  );
  if (response.status !== 200) {
    throw new Error(`GET /api/runs/${runId}/events answered ${response.status}: ${await response.text()}`);
  }
  const marker = '"type":"step.output"';
  let firstOutput = 0;
  let tail = "";
  let bytes = 0;
  let last: Uint8Array[] = [];
  let lastBytes = 0;
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    // The last 64 KB, where `run.finished` is (with a summary of every step).
    last.push(chunk);
    lastBytes += chunk.byteLength;
    while (last.length > 1 && lastBytes - (last[0]?.byteLength ?? 0) >= 65536) {
      lastBytes -= last.shift()?.byteLength ?? 0;
    }
    if (firstOutput) continue;
    const text = tail + decoder.decode(chunk, { stream: true });
    if (text.includes(marker)) firstOutput = performance.now();
    tail = text.slice(-marker.length);
  }
  const end = performance.now();
  const ending = Buffer.concat(last).toString("utf8");
  last = [];
  const finished = ending.lastIndexOf("event: run.finished\ndata: ");
  if (finished < 0)
    throw new Error(`the event stream of ${runId} ended without run.finished: ...${ending.slice(-300)}`);
  const data = ending.slice(finished + "event: run.finished\ndata: ".length).split("\n")[0] ?? "";
  const status = (JSON.parse(data) as { status?: string }).status ?? "unknown";
  return { firstOutput, end, bytes, status };
}

/** Submit -> first output byte, in ms, of `count` trivial runs one after another. */
export interface FirstByteFigures {
  p50: number;
  p95: number;
  p99: number;
  /** CPU time a run of the server process, in ms (user + system, its own only). */
  serverCpuMs: number;
  /** CPU time a run of the runner process, in ms, and of it with the steps it started. */
  runnerCpuMs: number;
  runnerTreeCpuMs: number;
}

/** A process's own CPU time so far, in ms (user + system; not its children's). */
export function ownCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) / 100) * 1000;
}

/**
 * Submit -> first output byte at an SSE client of `count` trivial runs, one after another, with
 * one idle runner. Server, runner and client are three processes, as deployed; the server's
 * store is `store`. Also what a run costs each process in CPU time.
 */
export async function measureFirstByte(
  store: BenchStore,
  count: number,
  runnerEnv: Record<string, string> = {},
  /** Idle time after each run, as between a user's runs (the runner's work between runs done). */
  gapMs = 0,
): Promise<FirstByteFigures> {
  const server = await serverProcess({}, store);
  try {
    const runner = await runnerProcess(server.url, server.runnerToken, runnerEnv);
    const serverPid = server.child.pid ?? 0;
    const runnerPid = runner.pid ?? 0;
    try {
      const latencies: number[] = [];
      let cpuBefore = { server: 0, runner: 0, runnerTree: 0 };
      for (let i = 0; i < count + 20; i++) {
        // The first 20 warm up routes, statements and the runner's first spawns.
        if (i === 20)
          cpuBefore = {
            server: ownCpuMs(serverPid),
            runner: ownCpuMs(runnerPid),
            runnerTree: treeCpuMs(runnerPid),
          };
        const start = performance.now();
        const runId = await submit(server.url);
        const { firstOutput, status } = await follow(server.url, runId);
        if (status !== "success" || !firstOutput) throw new Error(`bench run ${runId} ended ${status}`);
        if (i >= 20) latencies.push(firstOutput - start);
        if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
      }
      return {
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        p99: percentile(latencies, 99),
        serverCpuMs: (ownCpuMs(serverPid) - cpuBefore.server) / count,
        runnerCpuMs: (ownCpuMs(runnerPid) - cpuBefore.runner) / count,
        runnerTreeCpuMs: (treeCpuMs(runnerPid) - cpuBefore.runnerTree) / count,
      };
    } finally {
      runner.kill();
    }
  } finally {
    server.child.kill();
  }
}

/**
 * Submit -> first output byte at an SSE client, over 1,000 trivial runs with one idle runner
 * (server, runner and client are processes), against a fresh Node process spawning the same
 * command 1,000 times and reading each first byte.
 */
export async function firstByteLatency(): Promise<BenchRow[]> {
  const direct = directSpawns(1000, 1);
  const ours = await measureFirstByte(sqliteStore, 1000);
  // A run at a time with a pause after each (0.2 s), both sides: a runner's work between runs
  // (a pooled sandbox made again, the last run's folders removed) is done before the next submit,
  // as for a user's runs, where back to back it falls on the next run's path.
  const idleDirect = directSpawns(300, 1, idleGapMs);
  const idle = await measureFirstByte(sqliteStore, 300, {}, idleGapMs);
  // Where a run's CPU goes: the server, the runner, and the steps the runner starts (sandbox).
  const cpu =
    `; CPU a run: server ${ours.serverCpuMs.toFixed(1)} ms, runner ${ours.runnerCpuMs.toFixed(1)} ms, ` +
    `its steps ${(ours.runnerTreeCpuMs - ours.runnerCpuMs).toFixed(1)} ms`;
  return [
    ...(["p50", "p99"] as const).map((p) => ({
      name: `SQLite: submit -> first byte at an SSE client, ${p} (1,000 runs)`,
      measured: `${ours[p].toFixed(1)} ms${p === "p50" ? cpu : ""}`,
      baseline: `${direct[p].toFixed(1)} ms direct spawn`,
      ratio: ours[p] / direct[p],
      target: p === "p50" ? "<= 1.5" : "<= 2",
    })),
    {
      name: `the same, p50, a run every ${idleGapMs / 1000} s after the last (300 runs)`,
      measured: `${idle.p50.toFixed(1)} ms (p99 ${idle.p99.toFixed(1)} ms)`,
      baseline: `${idleDirect.p50.toFixed(1)} ms direct spawn, as paced`,
      ratio: idle.p50 / idleDirect.p50,
      target: "<= 1.5",
    },
  ];
}

/** The pause after each run of the paced first-byte row. */
const idleGapMs = 200;

/** What a direct spawn does: first-byte percentiles in ms and spawns per second. */
export interface DirectFigures {
  p50: number;
  p99: number;
  perSecond: number;
  /** Spawns per second of CPU time (the Node process's and its children's, user + system). */
  perCpuSecond: number;
}

/**
 * The floor: a fresh Node process spawning `/bin/echo hi` `count` times, `inFlight` at a time,
 * reading each first byte. Fresh, because a process whose heap the other benches have grown
 * forks slower, and the baseline would then depend on the order of the benches.
 */
export function directSpawns(count: number, inFlight: number, gapMs = 0): DirectFigures {
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
    let left = ${count};
    const pause = () => new Promise((resolve) => setTimeout(resolve, ${gapMs}));
    const lane = async () => { while (left-- > 0) { await once(); if (${gapMs} > 0) await pause(); } };
    (async () => {
      const start = performance.now();
      await Promise.all(Array.from({ length: ${inFlight} }, lane));
      const seconds = (performance.now() - start) / 1000;
      firsts.sort((a, b) => a - b);
      const at = (p) => firsts[Math.min(firsts.length - 1, Math.floor(p * firsts.length))];
      console.log(JSON.stringify({ p50: at(0.5), p99: at(0.99), perSecond: ${count} / seconds }));
    })();
  `;
  // `times` after the script: the CPU time of the Node process and the children it waited for.
  const result = spawnSync("sh", ["-c", '"$@" || exit $?; times', "sh", process.execPath, "-e", script], {
    encoding: "utf8",
  });
  const lines = result.stdout.trim().split("\n");
  const seconds = [...(lines.at(-1) ?? "").matchAll(/(\d+)m([\d.]+)s/g)].map(
    (m) => Number(m[1]) * 60 + Number(m[2]),
  );
  const figures = JSON.parse(lines[0] ?? "") as Omit<DirectFigures, "perCpuSecond">;
  return { ...figures, perCpuSecond: count / ((seconds[0] ?? 0) + (seconds[1] ?? 0)) };
}

/** Daemons started by benches log nothing: the bench prints only its table. */
const quiet = { RUNYARD_LOG_LEVEL: "silent" };

/**
 * `runyard server` (or `runyard up`, once its local runner is connected) as a child process on
 * `store`, with a runner token made for it. Rejects when the process ends before it is ready
 * (e.g. `dist/` not built: `npx tsc -p tsconfig.build.json`).
 */
export async function serverProcess(
  env: Record<string, string> = {},
  store: BenchStore = sqliteStore,
  command: "server" | "up" = "server",
  /** Node's own flags, before the CLI (`--cpu-prof`, which NODE_OPTIONS may not carry). */
  nodeArgs: string[] = [],
): Promise<{ child: ChildProcess; url: string; runnerToken: string; home: string }> {
  const home = mkdtempSync(join(tmpdir(), "runyard-bench-"));
  const base: NodeJS.ProcessEnv = { ...process.env };
  // The SQLite rows must not land on a database the caller's shell happens to point at.
  delete base.RUNYARD_DATABASE_URL;
  if (store.kind === "postgres") base.RUNYARD_DATABASE_URL = store.databaseUrl;
  const child = spawn(process.execPath, [...nodeArgs, cli, command, "--port", "0", "--home", home], {
    env: { ...base, ...quiet, RUNYARD_ADMIN_TOKEN: admin, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + String(chunk)).slice(-2000);
  });
  const ready = command === "up" ? /local runner connected/ : /listening on/;
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += String(chunk);
      const match = stdout.match(/listening on (\S+)/);
      if (match?.[1] && ready.test(stdout)) resolve(match[1]);
    });
    child.once("exit", (code) =>
      reject(new Error(`runyard ${command} ended (${code}) before it was ready (dist/ built?): ${stderr}`)),
    );
  });
  const created = await fetch(`${url}/api/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ kind: "runner", name: "bench" }),
  });
  const { token } = (await created.json()) as { token: string };
  return { child, url, runnerToken: token, home };
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
 * over SSE, through an in-process server on `store` and an in-process runner of `capacity`.
 */
export async function measureRunThroughput(store: BenchStore, count: number, capacity = 4): Promise<number> {
  return withServer(store, (server, token) =>
    withRunner(server.url, token, capacity, async () => {
      const start = performance.now();
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push(await submit(server.url));
      await Promise.all(ids.map((id) => follow(server.url, id)));
      return count / ((performance.now() - start) / 1000);
    }),
  );
}

/**
 * Trivial runs per second with `inFlight` runs in flight: each lane submits a run, follows it
 * over SSE to its end, then submits the next, until `count` have finished.
 */
export async function runsInFlight(url: string, count: number, inFlight: number): Promise<number> {
  let left = count;
  const lane = async (): Promise<void> => {
    while (left-- > 0) {
      const runId = await submit(url);
      const { status } = await follow(url, runId);
      if (status !== "success") throw new Error(`bench run ${runId} ended ${status}`);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, lane));
  return count / ((performance.now() - start) / 1000);
}

export function rssOf(pid: number): number {
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

/**
 * An SSE client that sends its request, checks that the stream opened (the first bytes, with the
 * status line) and never reads another byte of the answer.
 */
export function idleSseClient(url: string, runId: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET /api/runs/${runId}/events HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${admin}\r\n\r\n`,
      );
    });
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      const head = String(chunk).split("\r\n")[0] ?? "";
      if (head.startsWith("HTTP/1.1 200")) resolve(socket);
      else {
        socket.destroy();
        reject(new Error(`the event stream of ${runId} answered ${head}`));
      }
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
