import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { EventInput, RunEvent } from "../core/events.js";
import type { Store } from "../store/index.js";
import { EventBus } from "./event-bus.js";
import { RunSink, stamp } from "./run-sink.js";

function output(data: string, step = "build"): EventInput {
  return { type: "step.output", step, host: "local", stream: "stdout", data };
}

describe.each(storeBackends)("RunSink on $name", (backend) => {
  let opened: TestStore;
  /** The replica carrying the run, and another one a runner of the run is connected to. */
  let carrier: Store;
  let other: Store;
  let runId: string;

  beforeEach(async () => {
    opened = await backend.open();
    carrier = opened.store;
    // SQLite is one server process: its writers share the process's one store.
    other = backend.name === "postgres" ? await opened.reopen() : carrier;
    runId = (await carrier.runs.create({ kind: "workflow", name: "deploy" })).id;
  });

  afterEach(async () => {
    if (other !== carrier) await other.close();
    await opened.dispose();
  });

  function sinkOn(store: Store, published: RunEvent[], maxBytes = 0): RunSink {
    const bus = new EventBus();
    bus.subscribe(runId, (event) => published.push(event));
    return new RunSink(runId, 0, store, bus, () => undefined, { maxBytes, storedBytes: 0 });
  }

  it("stores every event of two replicas appending to one run at once, numbered 1..n with no gap", async () => {
    const publishedHere: RunEvent[] = [];
    const publishedThere: RunEvent[] = [];
    const here = sinkOn(carrier, publishedHere);
    const job = await carrier.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
    // The engine's own events here while a runner's batches land on the other replica, stored and
    // published there as its job queue does.
    const thereBus = new EventBus();
    thereBus.subscribe(runId, (event) => publishedThere.push(event));
    const runnerBatch = async (batch: number) => {
      const stored = await other.events.appendForRun(
        runId,
        [stamp(output(`runner ${batch}\n`), new Date().toISOString())],
        { job: { id: job.id, seq: batch } },
      );
      thereBus.publish(stored.events);
    };
    // The runner's batches one after the other (a batch numbered below the job's last is a duplicate).
    let runner: Promise<void> = Promise.resolve();
    const writes: Promise<unknown>[] = [];
    for (let i = 1; i <= 150; i++) {
      here.emit({ type: "notice", level: "info", message: `engine ${i}` });
      runner = runner.then(() => runnerBatch(i));
      if (i % 10 === 0) writes.push(here.flush());
    }
    await Promise.all([...writes, runner, here.drain()]);
    const stored = await carrier.events.list(runId, { limit: 10_000 });
    expect(stored.map((event) => event.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(
      new Set(stored.map((e) => (e.type === "notice" ? e.message : e.type === "step.output" ? e.data : "")))
        .size,
    ).toBe(300);
    // Each replica's followers got what it stored, as stored.
    expect([...publishedHere, ...publishedThere].sort((a, b) => a.seq - b.seq)).toEqual(stored);
  });

  it("holds the run's log cap when another replica appends output too", async () => {
    const here = sinkOn(carrier, [], 100);
    const there = sinkOn(other, []);
    here.emit({ type: "step.started", step: "build", host: "local", attempt: 1 });
    await here.drain();
    for (let i = 0; i < 10; i++) {
      here.emit(output(`${"h".repeat(19)}\n`));
      there.emit(output(`${"t".repeat(19)}\n`));
      await Promise.all([here.drain(), there.drain()]);
    }
    here.emit({
      type: "step.finished",
      step: "build",
      host: "local",
      status: "success",
      exit_code: 0,
      attempts: 1,
      duration_ms: 1,
    });
    await here.drain();
    const stored = await carrier.events.list(runId, { limit: 10_000 });
    const outputBytes = stored.reduce((sum, e) => sum + (e.type === "step.output" ? e.data.length : 0), 0);
    expect(outputBytes).toBe(100);
    expect(stored.at(-2)).toMatchObject({
      type: "notice",
      message: expect.stringContaining("reached its cap of 100 bytes: 300 more bytes of output"),
    });
  });
});
