import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { postgresBinariesMissing, startPostgresCluster } from "../test/helpers/postgres-cluster.js";
import { percentile } from "./processes.js";
import { measureFirstByte } from "./server.js";
import type { BenchResult } from "./table.js";

/** The peer the job-queue rows are held against; 0.16.6 runs on Node 20 (engines: node >= 14). */
const graphileWorker = "graphile-worker@0.16.6";

/** Installed once per version under the repository's bench cache (in .gitignore), reused after. */
const cacheRoot = fileURLToPath(new URL("../../.bench-cache/peers/", import.meta.url));

/**
 * The worker process: graphile-worker's `run()` with one task that spawns the command the runyard
 * rows run (`/bin/echo hi`) and, on its first output byte, writes the job's number to its own
 * stdout, which the bench reads through the pipe. Concurrency 1, as the runyard runner's capacity.
 */
const workerScript = `
import { spawn } from "node:child_process";
import { Logger, run } from "graphile-worker";
await run({
  connectionString: process.env.DATABASE_URL,
  concurrency: 1,
  logger: new Logger(() => () => {}),
  taskList: {
    first_byte: (payload) =>
      new Promise((resolve, reject) => {
        const child = spawn("/bin/echo", ["hi"], { stdio: ["ignore", "pipe", "ignore"] });
        child.stdout.once("data", () => process.stdout.write(payload.n + "\\n"));
        child.stdout.resume();
        child.on("error", reject);
        child.on("close", resolve);
      }),
  },
});
process.stdout.write("ready\\n");
`;

/** The peer's folder, installed with npm if it is not yet; or why it could not be. */
function installPeer(spec: string): { dir: string } | { problem: string } {
  const dir = join(cacheRoot, spec);
  const name = spec.slice(0, spec.lastIndexOf("@"));
  if (existsSync(join(dir, "node_modules", name, "package.json"))) return { dir };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), '{ "private": true }\n');
  const npm = spawnSync("npm", ["install", "--prefix", dir, "--no-audit", "--no-fund", "--silent", spec], {
    encoding: "utf8",
  });
  if (npm.status !== 0)
    return { problem: `npm install ${spec} failed: ${(npm.stderr || String(npm.error)).slice(-300)}` };
  return { dir };
}

/**
 * The `peers` rows: on one throwaway PostgreSQL cluster, graphile-worker's `add_job` -> its task's
 * first byte read by this process, and runyard's submit -> first byte at an SSE client (server and
 * runner processes on the same cluster), 1,000 jobs each one after another, p50 and p99.
 */
export async function peersFirstByte(): Promise<BenchResult[]> {
  const missing = postgresBinariesMissing();
  if (missing)
    return [{ skipped: `peers rows: ${missing}; install PostgreSQL 15+ (apt-get install postgresql)` }];
  const peer = installPeer(graphileWorker);
  if ("problem" in peer) return [{ skipped: `peers rows: ${peer.problem}` }];
  const cluster = await startPostgresCluster();
  const stopOnExit = (): void => cluster.stopSync();
  process.once("exit", stopOnExit);
  try {
    const count = 1000;
    const theirs = await graphileFirstByte(peer.dir, await cluster.createDatabase(), count);
    const ours = await measureFirstByte(
      { kind: "postgres", databaseUrl: await cluster.createDatabase() },
      count,
    );
    // The same with the runner's sandbox off: what the queue costs apart from bubblewrap's start,
    // which graphile-worker's task (a bare spawn) does not pay. Printed, not a target of its own.
    const unsandboxed = await measureFirstByte(
      { kind: "postgres", databaseUrl: await cluster.createDatabase() },
      count,
      { RUNYARD_SANDBOX: "off" },
    );
    const note =
      `peers: ${graphileWorker} installed by the bench under .bench-cache/peers; both on one throwaway ` +
      `${cluster.version.replace(/^postgres \(PostgreSQL\) /, "PostgreSQL ")} cluster (fsync off), a database each, ` +
      "1,000 jobs one after another, each running /bin/echo hi; graphile-worker: run() with concurrency 1 in a " +
      "worker process, add_job from this process, the task's first byte read here through the worker's stdout; " +
      "runyard: `runyard server` and `runyard runner --capacity 1` processes, POST /api/runs, first byte read here " +
      "from the run's SSE stream; the `sandbox off` rows run the same runner with RUNYARD_SANDBOX=off (no bubblewrap)";
    return (["p50", "p99"] as const).flatMap((p) => [
      {
        name: `PostgreSQL: submit -> first byte, ${p}, vs graphile-worker add_job -> first byte`,
        measured: `${ours[p].toFixed(1)} ms`,
        baseline: `${theirs[p].toFixed(1)} ms graphile-worker`,
        ratio: ours[p] / theirs[p],
        target: "<= 1",
        note,
      },
      {
        name: `PostgreSQL: the same, ${p}, runner's sandbox off`,
        measured: `${unsandboxed[p].toFixed(1)} ms`,
        baseline: `${theirs[p].toFixed(1)} ms graphile-worker`,
        ratio: unsandboxed[p] / theirs[p],
        target: "<= 1",
        note,
      },
    ]);
  } finally {
    cluster.stopSync();
    process.off("exit", stopOnExit);
  }
}

async function graphileFirstByte(
  dir: string,
  databaseUrl: string,
  count: number,
): Promise<{ p50: number; p99: number }> {
  const script = join(dir, "first-byte-worker.mjs");
  writeFileSync(script, workerScript);
  const worker: ChildProcess = spawn(process.execPath, [script], {
    cwd: dir,
    env: { ...process.env, DATABASE_URL: databaseUrl },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const waiting = new Map<string, () => void>();
  let ready: () => void = () => undefined;
  const started = new Promise<void>((resolve, reject) => {
    ready = resolve;
    worker.once("exit", (code) =>
      reject(new Error(`graphile-worker process ended (${code}) before it was ready`)),
    );
  });
  const lines = createInterface({ input: worker.stdout as NodeJS.ReadableStream });
  lines.on("line", (line) => {
    if (line === "ready") ready();
    waiting.get(line)?.();
  });
  const client = new pg.Client({ connectionString: databaseUrl });
  try {
    await started;
    await client.connect();
    const latencies: number[] = [];
    for (let i = 0; i < count + 20; i++) {
      const key = String(i);
      const start = performance.now();
      const firstByte = new Promise<void>((resolve) => waiting.set(key, resolve));
      await client.query("select graphile_worker.add_job('first_byte', json_build_object('n', $1::int))", [
        i,
      ]);
      await firstByte;
      waiting.delete(key);
      // The first 20 warm the worker up (its prepared statements, the first spawns), as runyard's first runs do.
      if (i >= 20) latencies.push(performance.now() - start);
    }
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    await client.end().catch(() => undefined);
    worker.kill();
  }
}
