import { closeSync, openSync, readSync, statSync } from "node:fs";
import { cpus } from "node:os";
import pg from "pg";
import type { RunningServer } from "../src/server/server.js";
import {
  type PostgresCluster,
  postgresBinariesMissing,
  startPostgresCluster,
  throwawaySettings,
} from "../test/helpers/postgres-cluster.js";
import { type AppendShape, measureEventAppends } from "./events.js";
import {
  type BenchStore,
  follow,
  measureFirstByte,
  measureRunThroughput,
  sqliteStore,
  startBenchServer,
  submit,
  withRunner,
} from "./server.js";
import type { BenchResult } from "./table.js";

/**
 * The PostgreSQL section of `npm run bench`: the same scenarios on one PostgreSQL replica and on
 * SQLite, side by side, each against the SQLite figure measured right before it.
 *
 * - Two replicas (`RUNYARD_BENCH_REPLICAS`, default 2; 1 leaves the rows out): servers on one
 *   database, a runner on each, runs submitted to them in turn, against one replica measured the
 *   same way; and run events stored per replica with that many stores appending at once.
 * - `RUNYARD_BENCH_PG_PROFILE=1`: the cluster logs every statement; prints statements per trivial
 *   run by kind. The figures are then slower than without.
 */
export async function postgresVsSqlite(): Promise<BenchResult[]> {
  const missing = postgresBinariesMissing();
  if (missing) {
    return [{ skipped: `PostgreSQL rows: ${missing}; install PostgreSQL 15+ (apt-get install postgresql)` }];
  }
  const profile = process.env.RUNYARD_BENCH_PG_PROFILE === "1";
  const replicas = Number(process.env.RUNYARD_BENCH_REPLICAS ?? 2);
  const cluster = await startPostgresCluster({
    settings: profile ? { log_min_duration_statement: 0 } : {},
  });
  // The cluster goes away however the bench ends: `finally` below, or the exit of the process
  // (an uncaught error elsewhere, Ctrl-C).
  const stopOnExit = (): void => cluster.stopSync();
  const stopOnSignal = (signal: NodeJS.Signals): void => {
    cluster.stopSync();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("exit", stopOnExit);
  process.once("SIGINT", stopOnSignal);
  process.once("SIGTERM", stopOnSignal);
  try {
    return await section(cluster, { profile, replicas });
  } finally {
    cluster.stopSync();
    process.off("exit", stopOnExit);
    process.off("SIGINT", stopOnSignal);
    process.off("SIGTERM", stopOnSignal);
  }
}

async function section(
  cluster: PostgresCluster,
  options: { profile: boolean; replicas: number },
): Promise<BenchResult[]> {
  const postgres = async (): Promise<BenchStore> => ({
    kind: "postgres",
    databaseUrl: await cluster.createDatabase(),
  });
  const roundTrip = await roundTripP50(await cluster.createDatabase());
  const settings = Object.entries(throwawaySettings)
    .map(([name, value]) => `${name}=${value}`)
    .join(", ");
  const note =
    `PostgreSQL: ${cluster.version.replace(/^postgres \(PostgreSQL\) /, "")} throwaway cluster the bench starts ` +
    `on 127.0.0.1 over TCP, ${settings} (commits are cheaper than on a durable database), a fresh database ` +
    `per scenario, pool of 10; round trip (select 1) p50 ${roundTrip.toFixed(3)} ms. SQLite: the server's file ` +
    `store in a fresh home, measured right before.${options.profile ? " Statement logging on: slower than usual." : ""}`;
  const rows: BenchResult[] = [];

  const runs = 1000;
  const sqliteLatency = await measureFirstByte(sqliteStore, runs);
  const pgLatency = await measureFirstByte(await postgres(), runs);
  for (const p of ["p50", "p95"] as const) {
    rows.push({
      name: `PostgreSQL: submit -> first output byte, ${p} (1,000 runs)`,
      measured: `${pgLatency[p].toFixed(1)} ms`,
      baseline: `${sqliteLatency[p].toFixed(1)} ms SQLite`,
      ratio: pgLatency[p] / sqliteLatency[p],
      target: "<= 1.5",
      note,
    });
  }

  const count = 300;
  const sqliteRate = await measureRunThroughput(sqliteStore, count);
  const pgStore = await postgres();
  const logStart = options.profile ? statSync(cluster.logPath).size : 0;
  const pgRate = await measureRunThroughput(pgStore, count);
  if (options.profile) printProfile(readFrom(cluster.logPath, logStart), count);
  rows.push({
    name: "PostgreSQL: trivial runs/s, one replica (300 runs, capacity 4)",
    measured: `${pgRate.toFixed(0)} runs/s`,
    baseline: `${sqliteRate.toFixed(0)} runs/s SQLite`,
    ratio: pgRate / sqliteRate,
    target: ">= 0.67",
    note,
  });

  const shapes: Array<{ label: string; shape: AppendShape }> = [
    { label: "1-event batches", shape: { runs: 4, batches: 500, perBatch: 1 } },
    { label: "100-event batches", shape: { runs: 4, batches: 50, perBatch: 100 } },
  ];
  for (const { label, shape } of shapes) {
    const sqliteEvents = await measureEventAppends(sqliteStore, shape);
    const pgEvents = await measureEventAppends(await postgres(), shape);
    rows.push({
      name: `PostgreSQL: run events stored/s per replica, ${label}, ${shape.runs} runs`,
      measured: `${pgEvents.toFixed(0)} events/s`,
      baseline: `${sqliteEvents.toFixed(0)} events/s SQLite`,
      ratio: pgEvents / sqliteEvents,
      target: ">= 0.67",
      note,
    });
  }

  if (options.replicas > 1) {
    const replicaNote =
      `${note} Every replica, its runner, PostgreSQL and the bench share this machine's ${cpus().length} cores: ` +
      "two replicas cannot be faster by the second machine they would have in production; the row checks that " +
      "coordinating (job reports relayed between replicas, LISTEN/NOTIFY) costs no throughput.";
    rows.push(...(await replicaRows(postgres, options.replicas, count, replicaNote)));
  }
  return rows;
}

/** Median time of `select 1` on one connection: the floor under every statement the store sends. */
async function roundTripP50(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const times: number[] = [];
    for (let i = 0; i < 500; i++) {
      const start = performance.now();
      await client.query("select 1");
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)] ?? 0;
  } finally {
    await client.end();
  }
}

/**
 * Several replicas on one database against one: trivial runs/s with `replicas` servers, a runner
 * of capacity 4 on each, runs submitted to them in turn and each followed on the server it was
 * submitted to, against one server measured the same way right before (each on a fresh
 * database); then run events stored per replica (1-event batches) with that many stores
 * appending at once, against one store.
 */
export async function replicaRows(
  database: () => Promise<BenchStore>,
  replicas: number,
  count: number,
  note: string,
): Promise<BenchResult[]> {
  const rows: BenchResult[] = [];
  const one = await measureReplicaThroughput(await database(), 1, count, 60_000);
  const several = await measureReplicaThroughput(await database(), replicas, count, 60_000);
  const failed = [one, several].find((outcome) => outcome.rate === undefined);
  if (failed || one.rate === undefined || several.rate === undefined) {
    rows.push({
      skipped:
        `PostgreSQL: ${failed?.replicas ?? replicas} replica(s) on one database: ${failed?.finished} of ${count} runs ` +
        `finished within 60 s${failed?.error ? ` (${failed.error})` : ""}`,
    });
  } else {
    rows.push({
      name: `PostgreSQL: trivial runs/s, ${replicas} replicas on one database vs one (${count} runs)`,
      measured: `${several.rate.toFixed(0)} runs/s`,
      baseline: `${one.rate.toFixed(0)} runs/s one replica`,
      ratio: several.rate / one.rate,
      target: ">= 1.0",
      note,
    });
  }
  const shape: AppendShape = { runs: 4, batches: 500, perBatch: 1 };
  const oneEvents = await measureEventAppends(await database(), shape, 1);
  const perReplica = await measureEventAppends(await database(), shape, replicas);
  rows.push({
    name: `PostgreSQL: run events stored/s per replica, ${replicas} replicas vs one, 1-event batches`,
    measured: `${perReplica.toFixed(0)} events/s`,
    baseline: `${oneEvents.toFixed(0)} events/s one replica`,
    ratio: perReplica / oneEvents,
    // Per replica at least 1/n of one replica's: together they store no less than one alone.
    target: `>= ${(1 / replicas).toFixed(2)}`,
    note,
  });
  return rows;
}

async function measureReplicaThroughput(
  store: BenchStore,
  replicas: number,
  count: number,
  timeoutMs: number,
): Promise<{ replicas: number; rate?: number; finished: number; error?: string }> {
  const servers: RunningServer[] = [];
  try {
    for (let i = 0; i < replicas; i++) servers.push(await startBenchServer(store));
    const first = servers[0];
    if (!first) throw new Error("no replica");
    // One database: a token made through one replica works on every one.
    const { secret } = await first.store.tokens.create({ kind: "runner", name: "bench" });
    const withRunners = async <T>(index: number, fn: () => Promise<T>): Promise<T> => {
      const server = servers[index];
      if (!server) return fn();
      return withRunner(server.url, secret, 4, () => withRunners(index + 1, fn), `bench-runner-${index}`);
    };
    return await withRunners(0, async () => {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), timeoutMs);
      try {
        let finished = 0;
        const start = performance.now();
        const follows: Array<Promise<unknown>> = [];
        const runIds: string[] = [];
        for (let i = 0; i < count; i++) {
          const url = servers[i % servers.length]?.url ?? first.url;
          const runId = await submit(url);
          runIds.push(runId);
          follows.push(follow(url, runId, abort.signal).then(() => finished++));
        }
        const settled = await Promise.allSettled(follows);
        const seconds = (performance.now() - start) / 1000;
        const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
        if (failed || finished < count) {
          // Which runs did not end, and where they stand: the evidence for a bug report.
          const stuck: string[] = [];
          for (const [i, settledFollow] of settled.entries()) {
            if (settledFollow.status === "fulfilled" || stuck.length >= 3) continue;
            const runId = runIds[i] ?? "";
            const run = await first.store.runs.get(runId);
            const jobs = await first.store.jobs.list({ runId });
            stuck.push(
              `${runId} via replica ${i % servers.length} ${run?.status} seq ${run?.last_seq}, jobs ` +
                jobs.map((job) => `${job.status}@${job.runner_id}`).join(","),
            );
          }
          return {
            replicas,
            finished,
            error: `${failed ? String(failed.reason).slice(0, 80) : "incomplete"}; ${stuck.join("; ")}`,
          };
        }
        return { replicas, rate: count / seconds, finished };
      } finally {
        clearTimeout(timer);
      }
    });
  } finally {
    for (const server of servers) await server.close().catch(() => undefined);
  }
}

function readFrom(path: string, offset: number): string {
  const size = statSync(path).size;
  const buffer = Buffer.alloc(Math.max(0, size - offset));
  const fd = openSync(path, "r");
  try {
    readSync(fd, buffer, 0, buffer.length, offset);
  } finally {
    closeSync(fd);
  }
  return buffer.toString("utf8");
}

/**
 * Statements the server sent during the runs/s scenario, per run, by kind, from the cluster's
 * `log_min_duration_statement = 0` lines (`duration: X ms  execute <name>: SQL` or
 * `statement: SQL`; node-postgres sends parse, bind and execute in one round trip).
 */
function printProfile(log: string, runs: number): void {
  const pattern = /duration: ([\d.]+) ms {2}(?:execute [^:]*|statement): (.*)/g;
  const kinds = new Map<string, { count: number; ms: number }>();
  let total = 0;
  let totalMs = 0;
  for (const match of log.matchAll(pattern)) {
    const ms = Number(match[1]);
    const sql = (match[2] ?? "").replace(/\s+/g, " ").trim();
    const kind = sql
      .replace(/\$\d+/g, "?")
      .replace(/\((?:\?, )+\?\)/g, "(…)")
      .slice(0, 90);
    const entry = kinds.get(kind) ?? { count: 0, ms: 0 };
    entry.count += 1;
    entry.ms += ms;
    kinds.set(kind, entry);
    total += 1;
    totalMs += ms;
  }
  console.log(
    `profile: PostgreSQL, ${runs} trivial runs: ${total} statements (${(total / runs).toFixed(1)} per run), ` +
      `${totalMs.toFixed(0)} ms executing in the server (${(totalMs / total).toFixed(3)} ms per statement, parse and bind not counted)`,
  );
  const top = [...kinds.entries()].sort((a, b) => b[1].count - a[1].count).slice(0, 25);
  for (const [kind, { count, ms }] of top) {
    console.log(
      `profile: ${(count / runs).toFixed(2).padStart(6)}/run  ${(ms / count).toFixed(3)} ms  ${kind}`,
    );
  }
}
