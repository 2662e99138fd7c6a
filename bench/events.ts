import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EventInput } from "../src/core/events.js";
import { silentLogger } from "../src/core/logger.js";
import { EventBus } from "../src/server/event-bus.js";
import { RunSink } from "../src/server/run-sink.js";
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

/**
 * Run events stored per second by one server's store, without a runner: each run's job batches
 * go through `RunSink.jobBatch` (numbered, stored with the batch's compare-and-set on the job,
 * then published), as the server does with a runner's `events` message. The store is opened as
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
    const sinks: Array<{ sink: RunSink; jobId: string }> = [];
    for (const store of stores) {
      for (let i = 0; i < shape.runs; i++) {
        const run = await store.runs.create({ kind: "workflow", name: `append-${i}`, spec: {} });
        const job = await store.jobs.create({ run_id: run.id, requirements: { labels: [] }, payload: {} });
        sinks.push({ sink: new RunSink(run.id, 0, store, bus, () => undefined), jobId: job.id });
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
      sinks.map(async ({ sink, jobId }) => {
        for (let batch = 1; batch <= shape.batches; batch++) await sink.jobBatch(jobId, batch, inputs);
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    // Per replica: each stored its own runs' events in the same time.
    return (shape.runs * shape.batches * shape.perBatch) / seconds;
  } finally {
    for (const store of stores) await store.close();
  }
}
