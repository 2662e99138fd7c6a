import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EventInput } from "../src/core/events.js";
import { silentLogger } from "../src/core/logger.js";
import { EventBus } from "../src/server/event-bus.js";
import { stamp } from "../src/server/run-sink.js";
import { createStore } from "../src/store/create-store.js";
import type { Store } from "../src/store/index.js";
import { type BenchStore, benchSecretKey } from "./server.js";

export interface AppendShape {
  /** Runs appending at once, each through its own sink (a server with that many busy runs). */
  runs: number;
  /** Batches per run, each stored before the next is sent (the runner's ack window of 1). */
  batches: number;
  /** `step.output` events per batch, one 80-byte line each. */
  perBatch: number;
}

const line = `${"runyard-bench-output-".padEnd(79, "x")}\n`;

/** The runner the bench's jobs are leased to. */
const benchRunner = {
  id: "runner-bench",
  group: "default",
  labels: [],
  tenant_id: null,
  shared: false,
  isolation: "none",
} as const;

/**
 * Run events stored per second by one server's store, without a runner: each run's job batches
 * are stamped and go to `events.appendForRun` with the job and the runner it is leased to
 * (numbered, stored with the batch's compare-and-set on the job), then published, as
 * `JobQueue.events` does with a runner's `events` message. The store is opened as
 * the server opens it: the SQLite file in a fresh folder, or the PostgreSQL database. With
 * `replicas`, that many stores on the database append at once, each `shape.runs` runs; the figure
 * is then per replica.
 */
export async function measureEventAppends(
  choice: BenchStore,
  shape: AppendShape,
  replicas = 1,
): Promise<number> {
  const stores: Store[] = [];
  try {
    // Replicas on PostgreSQL: one store (pool) each on the same database, appending at once.
    const sqlitePath = join(mkdtempSync(join(tmpdir(), "runyard-bench-")), "runyard.db");
    for (let i = 0; i < replicas; i++) {
      stores.push(
        await createStore({
          ...(choice.kind === "postgres" ? { databaseUrl: choice.databaseUrl } : { sqlitePath }),
          secretKey: benchSecretKey,
          logger: silentLogger,
        }),
      );
    }
    const bus = new EventBus();
    const jobs: Array<{ store: Store; runId: string; jobId: string }> = [];
    for (const store of stores) {
      for (let i = 0; i < shape.runs; i++) {
        const run = await store.runs.create({ kind: "workflow", name: `append-${i}`, spec: {} });
        await store.jobs.create({ run_id: run.id, requirements: { labels: [] }, payload: {} });
        // Leased and taken up, as a job is while its runner reports: the only one queued.
        const claimed = await store.jobs.claim(benchRunner, 3_600_000);
        if (!claimed) throw new Error("the bench's job was not claimed");
        await store.jobs.accept(claimed.id, benchRunner.id);
        jobs.push({ store, runId: run.id, jobId: claimed.id });
      }
    }
    const inputs: EventInput[] = Array.from({ length: shape.perBatch }, () => ({
      type: "step.output",
      step: "print",
      host: "local",
      stream: "stdout",
      data: line,
    }));
    const start = performance.now();
    await Promise.all(
      jobs.map(async ({ store, runId, jobId }) => {
        for (let batch = 1; batch <= shape.batches; batch++) {
          const ts = new Date().toISOString();
          const stored = await store.events.appendForRun(
            runId,
            inputs.map((input) => stamp(input, ts)),
            { job: { id: jobId, seq: batch, runnerId: benchRunner.id } },
          );
          bus.publish(stored.events);
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    // Per replica: each stored its own runs' events in the same time.
    return (shape.runs * shape.batches * shape.perBatch) / seconds;
  } finally {
    for (const store of stores) await store.close();
  }
}
