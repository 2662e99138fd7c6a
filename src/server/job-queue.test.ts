import { readdirSync, readFileSync } from "node:fs";
import { join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { EventInput, UnnumberedEvent } from "../core/events.js";
import type { Job, JobResult } from "../core/jobs/index.js";
import { silentLogger } from "../core/logger.js";
import { storeUnavailable } from "../store/connection-loss.js";
import type { Store } from "../store/index.js";
import { EventBus } from "./event-bus.js";
import { JobQueue } from "./job-queue.js";
import type { RunnerLinks } from "./job-queue-options.js";
import { endedEarly } from "./job-records.js";
import { RunSink } from "./run-sink.js";

const sqlite = storeBackends.find((backend) => backend.name === "sqlite");

/** The queues a test made: stopped after it, before its store goes, as a server stops its queue. */
const made: JobQueue[] = [];

function queueOn(store: Store, links: Partial<RunnerLinks> = {}): JobQueue {
  const none: RunnerLinks = {
    dispatch: () => undefined,
    cancel: () => false,
    drop: () => undefined,
    jobChanged: () => undefined,
  };
  const queue = new JobQueue({
    store,
    bus: new EventBus(),
    links: { ...none, ...links },
    logger: silentLogger,
    replicaId: "local",
    leaseMs: 60_000,
  });
  made.push(queue);
  return queue;
}

const runner = { group: "default", labels: [], tenant_id: null, shared: false, isolation: "none" } as const;

/** A trivial step job of `runId` on `host` (not stored). */
function stepJob(runId: string, id: string, host = "worker"): Job {
  const payload = {
    run_id: runId,
    step: "s",
    host,
    attempt: 1,
    action: "cmd.run",
    script: "true",
    env: {},
  };
  return { job_id: id, kind: "step", payload } as unknown as Job;
}

/** A step job of `runId`, stored, claimed and taken up by runner-1. */
async function runningJob(store: Store, runId: string, id: string): Promise<Job> {
  const job = stepJob(runId, id);
  await store.jobs.create({ id, run_id: runId, requirements: { labels: [] }, payload: job.payload });
  await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
  await store.jobs.accept(id, "runner-1");
  return job;
}

/** A view of `store` whose `jobs` calls of `methods` are named in `calls`, in the order made. */
function recordingJobs(store: Store, methods: ReadonlyArray<keyof Store["jobs"]>) {
  const calls: string[] = [];
  const jobs = { ...store.jobs };
  for (const method of methods) {
    const real = store.jobs[method] as (...args: unknown[]) => unknown;
    Object.assign(jobs, {
      [method]: (...args: unknown[]) => {
        calls.push(method);
        return real.apply(store.jobs, args);
      },
    });
  }
  return { store: Object.assign(Object.create(store) as Store, { jobs }), calls };
}

/** A view of `store` whose `events.appendForRun` is `append` (which may call the real one). */
function withAppend(store: Store, append: Store["events"]["appendForRun"]): Store {
  return Object.assign(Object.create(store) as Store, { events: { ...store.events, appendForRun: append } });
}

/** A runner's output event of the test's step job. */
function stepOutput(data: string): EventInput {
  return { type: "step.output", step: "s", host: "worker", stream: "stdout", data } as EventInput;
}

/**
 * An engine's wait on a step job of `runId`, through `store` (a counting view of the real one):
 * its queue, its sink and its outcome, once the job is stored and claimed by runner-1. Its start
 * emits `step.started` into the sink, as the engine does.
 */
async function engineWaitingOn(real: Store, store: Store, runId: string, lastSeq: number, id: string) {
  const job = stepJob(runId, id);
  const sink = new RunSink(runId, lastSeq, store, new EventBus(), () => undefined);
  const queue = queueOn(store);
  const outcome = queue.runJob(
    job,
    { runId, sink, tenantId: null },
    { requirements: { labels: [] }, host: "worker" },
    new AbortController().signal,
    () => sink.emit({ type: "step.started", step: "s", host: "worker", attempt: 1 } as EventInput),
  );
  await until(async () => (await real.jobs.get(id)) !== undefined);
  await real.jobs.claim({ id: "runner-1", ...runner }, 60_000);
  return { job, queue, outcome, sink };
}

describe("JobQueue with the store as the only mailbox", () => {
  let opened: TestStore;
  beforeEach(async () => {
    opened = await (sqlite ?? storeBackends[0])!.open();
  });
  afterEach(() => {
    for (const queue of made.splice(0)) queue.stop();
    return opened.dispose();
  });

  it("stores a runner's batch in the run's events once and its result on the row when the engine is elsewhere", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "elsewhere" });
    const changed: string[] = [];
    const broker = queueOn(store, { jobChanged: (_run, jobId) => changed.push(jobId) });
    const job = await runningJob(store, run.id, "job-1");
    const notice = {
      type: "notice",
      level: "info",
      message: "from the runner",
      step: "s",
      host: "worker",
    } as unknown as EventInput;
    // The engine elsewhere has not stored the step's start: the batch is held, not stored.
    expect(await broker.events("job-1", 1, [notice], "runner-1")).toBe("held");
    expect((await store.events.list(run.id)).filter((event) => event.type === "notice")).toEqual([]);
    const ts = new Date().toISOString();
    const starts: UnnumberedEvent[] = [
      { type: "run.started", name: "elsewhere", ts },
      { type: "step.started", step: "s", host: "worker", attempt: 1, ts },
    ];
    await store.events.appendForRun(run.id, starts);
    expect(await broker.events("job-1", 1, [notice], "runner-1")).toBe("stored");
    expect(await broker.events("job-1", 1, [notice], "runner-1")).toBe("duplicate");
    expect(await broker.finished("job-1", 2, endedEarly(job, "CANCELED", "x"), "runner-1")).toBe(
      "missing-events",
    );
    const result = endedEarly(job, "RUNNER_LOST", "reported");
    expect(await broker.finished("job-1", 1, result, "runner-1")).toBe("done");
    const stored = await store.events.list(run.id);
    expect(stored.filter((event) => event.type === "notice")).toHaveLength(1);
    expect((await store.jobs.get("job-1"))?.status).toBe("done");
    expect(changed).toEqual(["job-1"]);
    // Nothing here waits for the job: a replica that stores for others keeps no memory of it.
    expect(broker.waitedJobs()).toEqual([]);
  });

  it("gives an engine that waits after its job ended elsewhere the row's result, after the run's events", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "later" });
    const job = await runningJob(store, run.id, "job-2");
    const result = endedEarly(job, "RUNNER_LOST", "reported");
    expect(await queueOn(store).finished("job-2", 0, result, "runner-1")).toBe("done");
    const calls: string[] = [];
    const sink = {
      catchUp: async () => void calls.push("catchUp"),
      drain: async () => undefined,
    } as unknown as RunSink;
    const got = await queueOn(store).runJob(
      job,
      { runId: run.id, sink, tenantId: null },
      { requirements: { labels: [] }, host: "worker" },
      new AbortController().signal,
    );
    expect(got).toEqual(result);
    expect(calls).toEqual(["catchUp"]);
  });

  it("wakes an engine waiting here when the job's row changes elsewhere (accepted, then lost)", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "waiting" });
    const job = stepJob(run.id, "job-3");
    const sink = { catchUp: async () => undefined, drain: async () => undefined } as unknown as RunSink;
    const engine = queueOn(store);
    let started = 0;
    const outcome = engine.runJob(
      job,
      { runId: run.id, sink, tenantId: null },
      { requirements: { labels: [] }, host: "worker" },
      new AbortController().signal,
      () => started++,
    );
    await until(async () => (await store.jobs.get("job-3")) !== undefined);
    await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
    await store.jobs.accept("job-3", "runner-1");
    engine.jobsChanged(["job-3"]);
    await until(() => started === 1);
    await store.jobs.lose("job-3", "runner-1", { message: "runner runner-1 went away", taken_up: true });
    engine.jobsChanged(["job-3"]);
    // The reason is read from the row: it crosses replicas.
    expect(await outcome).toMatchObject({
      error: { code: "RUNNER_LOST", message: "runner runner-1 went away" },
    });
    expect(started).toBe(1);
  });

  it.each([
    [true, 1],
    [false, 0],
  ])(
    "tells the engine its step began only when the lost job had been taken up (taken_up %s)",
    async (takenUp, starts) => {
      const { store } = opened;
      const run = await store.runs.create({ kind: "workflow", name: "lost-unheard" });
      const job = stepJob(run.id, "job-4");
      const sink = { catchUp: async () => undefined, drain: async () => undefined } as unknown as RunSink;
      const engine = queueOn(store);
      let started = 0;
      const outcome = engine.runJob(
        job,
        { runId: run.id, sink, tenantId: null },
        { requirements: { labels: [] }, host: "worker" },
        new AbortController().signal,
        () => started++,
      );
      await until(async () => (await store.jobs.get("job-4")) !== undefined);
      await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
      // Lost on another replica before this engine heard of any accept.
      await store.jobs.lose("job-4", "runner-1", { message: "gone", taken_up: takenUp });
      engine.jobsChanged(["job-4"]);
      expect(await outcome).toMatchObject({ error: { code: "RUNNER_LOST", message: "gone" } });
      expect(started).toBe(starts);
    },
  );

  it("takes a step job from queued to done here reading its row only for a duplicate batch: accept, three batches and the result", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "round trips" });
    const counting = recordingJobs(store, ["get"]);
    const { job, queue, outcome } = await engineWaitingOn(
      store,
      counting.store,
      run.id,
      run.last_seq,
      "job-4",
    );
    await queue.accept("job-4", "runner-1");
    for (const batch of [1, 2, 3]) {
      const output = { type: "step.output", step: "s", host: "worker", stream: "stdout", data: `${batch}\n` };
      expect(await queue.events("job-4", batch, [output as EventInput], "runner-1")).toBe("stored");
    }
    expect(await queue.events("job-4", 2, [], "runner-1")).toBe("duplicate");
    const result = endedEarly(job, "RUNNER_LOST", "reported");
    expect(await queue.finished("job-4", 3, result, "runner-1")).toBe("done");
    expect(await outcome).toEqual(result);
    // The result is checked against the row by the statement that stores it; the duplicate batch
    // costs a read.
    expect(counting.calls).toEqual(["get"]);
    const stored = await store.events.list(run.id);
    expect(stored.map((event) => event.type)).toEqual([
      "step.started",
      "step.output",
      "step.output",
      "step.output",
    ]);
  });

  it("takes a runner's first batch as its accept with no write of its own when the engine waits here: the step's start, then the batch", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "folded accept" });
    const counting = recordingJobs(store, ["accept"]);
    const { job, queue, outcome } = await engineWaitingOn(
      store,
      counting.store,
      run.id,
      run.last_seq,
      "job-folded",
    );
    // Another runner's report does not make the job its own; an engine elsewhere is not told here.
    expect(queue.acceptedByBatch("job-nobody-waits-for", "runner-1")).toBe(false);
    expect(queue.acceptedByBatch("job-folded", "runner-1")).toBe(true);
    // Said once: a second report of the same job is a batch, not an accept.
    expect(queue.acceptedByBatch("job-folded", "runner-1")).toBe(false);
    const output = { type: "step.output", step: "s", host: "worker", stream: "stdout", data: "hi\n" };
    expect(await queue.events("job-folded", 1, [output as EventInput], "runner-1")).toBe("stored");
    // The batch's own statement moved the row: running, its runner's, no accept written before.
    expect(await store.jobs.get("job-folded")).toMatchObject({ status: "running", runner_id: "runner-1" });
    expect(counting.calls).toEqual([]);
    expect((await store.events.list(run.id)).map((event) => event.type)).toEqual([
      "step.started",
      "step.output",
    ]);
    const result = endedEarly(job, "RUNNER_LOST", "reported");
    expect(await queue.finished("job-folded", 1, result, "runner-1")).toBe("done");
    expect(await outcome).toEqual(result);
  });

  it("stores the step's start and the runner's first batch in one transaction; a later batch on its own", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "one write" });
    const appends: string[][] = [];
    const counting = withAppend(store, (...args) => {
      const [, batch, options] = args;
      appends.push([...(options?.lead ?? []), ...batch].map((event) => event.type));
      return store.events.appendForRun(...args);
    });
    const { job, queue, outcome } = await engineWaitingOn(
      store,
      counting,
      run.id,
      run.last_seq,
      "job-one-write",
    );
    expect(queue.acceptedByBatch("job-one-write", "runner-1")).toBe(true);
    expect(await queue.events("job-one-write", 1, [stepOutput("first\n")], "runner-1")).toBe("stored");
    expect(appends).toEqual([["step.started", "step.output"]]);
    expect(await queue.events("job-one-write", 2, [stepOutput("second\n")], "runner-1")).toBe("stored");
    expect(appends).toEqual([["step.started", "step.output"], ["step.output"]]);
    // The same first batch again is a duplicate, and stores nothing twice.
    expect(await queue.events("job-one-write", 1, [stepOutput("first\n")], "runner-1")).toBe("duplicate");
    expect((await store.events.list(run.id)).map((event) => [event.seq, event.type])).toEqual([
      [1, "step.started"],
      [2, "step.output"],
      [3, "step.output"],
    ]);
    const result = endedEarly(job, "RUNNER_LOST", "reported");
    expect(await queue.finished("job-one-write", 2, result, "runner-1")).toBe("done");
    expect(await outcome).toEqual(result);
  });

  it("stores the engine's events on their own when the joint write fails: a runner's batch fails only itself", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "a batch the store refuses" });
    const refusing = withAppend(store, (...args) => {
      const [, batch] = args;
      if (batch.some((event) => event.type === "step.output" && event.data === "refused\n"))
        return Promise.reject(new Error("SQLITE_CONSTRAINT: the batch's own fault"));
      return store.events.appendForRun(...args);
    });
    const { queue } = await engineWaitingOn(store, refusing, run.id, run.last_seq, "job-refused-batch");
    expect(queue.acceptedByBatch("job-refused-batch", "runner-1")).toBe(true);
    await expect(queue.events("job-refused-batch", 1, [stepOutput("refused\n")], "runner-1")).rejects.toThrow(
      "the batch's own fault",
    );
    // The step's start is stored all the same, and the runner's next try of the batch follows it.
    expect((await store.events.list(run.id)).map((event) => event.type)).toEqual(["step.started"]);
    expect(await queue.events("job-refused-batch", 1, [stepOutput("ok\n")], "runner-1")).toBe("stored");
    expect((await store.events.list(run.id)).map((event) => event.type)).toEqual([
      "step.started",
      "step.output",
    ]);
  });

  it("gives the run's engine up when it is not known whether the joint write committed, as a write of its own would", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "an unsure commit" });
    const unsure = withAppend(store, async (...args) => {
      if (!args[2]?.lead) return store.events.appendForRun(...args);
      // Committed, and the answer lost with the connection.
      await store.events.appendForRun(...args);
      throw storeUnavailable(new Error("Connection terminated"), "unknown");
    });
    const { queue, sink } = await engineWaitingOn(store, unsure, run.id, run.last_seq, "job-unsure");
    expect(queue.acceptedByBatch("job-unsure", "runner-1")).toBe(true);
    const output = { type: "step.output", step: "s", host: "worker", stream: "stdout", data: "x\n" };
    // Not acked: the runner sends it again, to the next engine.
    await expect(queue.events("job-unsure", 1, [output as EventInput], "runner-1")).rejects.toMatchObject({
      code: "STORE_UNAVAILABLE",
    });
    // Its events may or may not be stored: the engine goes on from the stored ones, a new one.
    expect(sink.lost).toBe(true);
    sink.emit({ type: "step.finished", step: "s", host: "worker", status: "success" } as EventInput);
    await sink.drain().catch(() => undefined);
    expect((await store.events.list(run.id)).map((event) => event.type)).toEqual([
      "step.started",
      "step.output",
    ]);
  });

  it("stores nothing of a fenced replica's engine with a runner's first batch: the batch is not acked, and the engine hears it is fenced", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "fenced", replica_id: "replica-b" });
    const fenced: string[] = [];
    const carrier = { id: "replica-a", fenced: () => fenced.push("fenced"), lost: () => fenced.push("lost") };
    const sink = new RunSink(
      run.id,
      run.last_seq,
      store,
      new EventBus(),
      () => undefined,
      undefined,
      carrier,
    );
    const queue = queueOn(store);
    void queue.runJob(
      stepJob(run.id, "job-fenced"),
      { runId: run.id, sink, tenantId: null },
      { requirements: { labels: [] }, host: "worker" },
      new AbortController().signal,
      () => sink.emit({ type: "step.started", step: "s", host: "worker", attempt: 1 } as EventInput),
    );
    await until(async () => (await store.jobs.get("job-fenced")) !== undefined);
    await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
    expect(queue.acceptedByBatch("job-fenced", "runner-1")).toBe(true);
    const output = { type: "step.output", step: "s", host: "worker", stream: "stdout", data: "x\n" };
    await expect(queue.events("job-fenced", 1, [output as EventInput], "runner-1")).rejects.toMatchObject({
      code: "REPLICA_FENCED",
    });
    expect(fenced).toEqual(["fenced"]);
    expect(await store.events.list(run.id)).toEqual([]);
    expect(await store.jobs.get("job-fenced")).toMatchObject({ last_event_seq: 0 });
  });

  it("stores the engine's events on their own when the first batch it would join is a duplicate", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "duplicate first batch" });
    const { queue } = await engineWaitingOn(store, store, run.id, run.last_seq, "job-dup-first");
    const output = {
      type: "step.output",
      step: "s",
      host: "worker",
      stream: "stdout",
      data: "x\n",
    } as EventInput;
    // Its first batch stored through another replica already (the runner's resend reaches this one).
    await store.events.appendForRun(
      run.id,
      [{ ...output, ts: new Date().toISOString() } as UnnumberedEvent],
      {
        job: { id: "job-dup-first", seq: 1, runnerId: "runner-1" },
      },
    );
    expect(queue.acceptedByBatch("job-dup-first", "runner-1")).toBe(true);
    expect(await queue.events("job-dup-first", 1, [output], "runner-1")).toBe("duplicate");
    await until(async () => (await store.events.lastSeq(run.id)) === 2);
    expect((await store.events.list(run.id)).map((event) => event.type)).toEqual([
      "step.output",
      "step.started",
    ]);
  });

  it("refuses a batch of a job no longer leased to its runner, though the engine waits here", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "lost" });
    const job = stepJob(run.id, "job-5");
    const sink = new RunSink(run.id, run.last_seq, store, new EventBus(), () => undefined);
    const queue = queueOn(store);
    const outcome = queue.runJob(
      job,
      { runId: run.id, sink, tenantId: null },
      { requirements: { labels: [] }, host: "worker" },
      new AbortController().signal,
    );
    await until(async () => (await store.jobs.get("job-5")) !== undefined);
    await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
    await queue.accept("job-5", "runner-1");
    const output = {
      type: "step.output",
      step: "s",
      host: "worker",
      stream: "stdout",
      data: "x\n",
    } as EventInput;
    expect(await queue.events("job-5", 1, [output], "runner-2")).toBe("unknown");
    const record = await store.jobs.get("job-5");
    if (record) await queue.lost(record, "its lease expired");
    expect(await outcome).toMatchObject({ error: { code: "RUNNER_LOST" } });
    expect(await queue.events("job-5", 1, [output], "runner-1")).toBe("unknown");
    expect((await store.events.list(run.id)).filter((event) => event.type === "step.output")).toEqual([]);
  });

  it("cancels the job of an engine canceled before it asked: no runner is handed it, and the engine hears CANCELED", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "canceled before" });
    const sink = { catchUp: async () => undefined, drain: async () => undefined } as unknown as RunSink;
    // Canceled while the caller readied the job (a budget read, a store retry): the abort event
    // has fired already and does not come again.
    const controller = new AbortController();
    controller.abort();
    let got: JobResult | undefined;
    void queueOn(store)
      .runJob(
        stepJob(run.id, "job-6"),
        { runId: run.id, sink, tenantId: null },
        { requirements: { labels: [] }, host: "worker" },
        controller.signal,
      )
      .then((result) => {
        got = result;
      });
    await until(() => got !== undefined);
    expect(got).toMatchObject({ status: "canceled", error: { code: "CANCELED" } });
    expect((await store.jobs.get("job-6"))?.status).toBe("done");
    expect(await store.jobs.claim({ id: "runner-1", ...runner }, 60_000)).toBeUndefined();
  });

  it("cancels the job of an engine canceled while the job's row was being stored", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "canceled while stored" });
    const controller = new AbortController();
    // The cancel comes after the engine asked, before the row it would cancel exists.
    const aborting: Store = Object.assign(Object.create(store) as Store, {
      jobs: {
        ...store.jobs,
        create: (...args: Parameters<Store["jobs"]["create"]>) => {
          controller.abort();
          return store.jobs.create(...args);
        },
      },
    });
    const sink = { catchUp: async () => undefined, drain: async () => undefined } as unknown as RunSink;
    let got: JobResult | undefined;
    void queueOn(aborting)
      .runJob(
        stepJob(run.id, "job-7"),
        { runId: run.id, sink, tenantId: null },
        { requirements: { labels: [] }, host: "worker" },
        controller.signal,
      )
      .then((result) => {
        got = result;
      });
    await until(() => got !== undefined);
    expect(got).toMatchObject({ status: "canceled", error: { code: "CANCELED" } });
    expect(await store.jobs.claim({ id: "runner-1", ...runner }, 60_000)).toBeUndefined();
  });

  it("tells the runner holding a job to stop when an engine canceled before it asked waits on it (a run taken over)", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "taken over canceled" });
    const job = await runningJob(store, run.id, "job-8");
    const told: string[] = [];
    const queue = queueOn(store, {
      cancel: (jobId, runnerId) => {
        told.push(`${jobId}@${runnerId}`);
        return true;
      },
    });
    const controller = new AbortController();
    controller.abort();
    const sink = { catchUp: async () => undefined, drain: async () => undefined } as unknown as RunSink;
    void queue.runJob(
      job,
      { runId: run.id, sink, tenantId: null },
      { requirements: { labels: [] }, host: "worker" },
      controller.signal,
    );
    await until(() => told.length > 0);
    expect(told).toEqual(["job-8@runner-1"]);
  });

  it("reads the rows of every job its engines wait for in one statement when it sweeps", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "sweep" });
    const { store: counting, calls } = recordingJobs(store, ["get", "list"]);
    const queue = queueOn(counting);
    let started = 0;
    for (const host of ["a", "b", "c"]) {
      void queue.runJob(
        stepJob(run.id, `job-${host}`, host),
        {
          runId: run.id,
          sink: new RunSink(run.id, 0, store, new EventBus(), () => undefined),
          tenantId: null,
        },
        { requirements: { labels: [] }, host },
        new AbortController().signal,
        () => started++,
      );
    }
    await until(async () => (await store.jobs.list({ runId: run.id })).length === 3);
    for (const host of ["a", "b", "c"]) {
      await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
      await store.jobs.accept(`job-${host}`, "runner-1");
    }
    calls.length = 0;
    await queue.recheckWaited();
    await until(() => started === 3);
    expect(calls).toEqual(["list"]);
  });
});

/** Waits for `check`, which comes at once on a quiet machine; 20 s is a net for a loaded one. */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met within 20 s");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("the job queue as the one owner of the job lifecycle", () => {
  it("is the only code outside the store that calls the store's job verbs", () => {
    const verbs = [
      "create",
      "claim",
      "accept",
      "complete",
      "giveBack",
      "refuse",
      "lose",
      "giveUp",
      "cancelQueued",
      "cancel",
      "renewLeases",
      "holdLeases",
    ];
    // Read as syntax, not lines: `this.store.jobs\n  .create(` is one call.
    const src = fileURLToPath(new URL("..", import.meta.url));
    const callers: string[] = [];
    for (const file of readdirSync(src, { recursive: true, encoding: "utf8" })) {
      if (!file.endsWith(".ts") || file.endsWith(".test.ts") || file.startsWith(`store${sep}`)) continue;
      const source = ts.createSourceFile(file, readFileSync(join(src, file), "utf8"), ts.ScriptTarget.Latest);
      const visit = (node: ts.Node): void => {
        if (ts.isCallExpression(node) && isJobVerb(node.expression, verbs)) {
          const { line } = source.getLineAndCharacterOfPosition(node.expression.name.getStart(source));
          callers.push(`${file}:${line + 1}`);
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    expect(callers.length).toBeGreaterThan(0);
    // The queue is two files: its lifecycle (job-queue.ts) and its leases (job-leases.ts).
    const queue = [`server${sep}job-queue.ts:`, `server${sep}job-leases.ts:`];
    expect(callers.filter((caller) => !queue.some((file) => caller.startsWith(file)))).toEqual([]);
  });
});

/**
 * `store.jobs.<verb>(`, `this.store.jobs.<verb>(` (any name ending in "store"), whatever the
 * spacing and line breaks between them. A JobQueue held as `this.jobs` (the run service's) is
 * not the store's repo: its verbs are the queue's.
 */
function isJobVerb(callee: ts.Expression, verbs: readonly string[]): callee is ts.PropertyAccessExpression {
  if (!ts.isPropertyAccessExpression(callee) || !verbs.includes(callee.name.text)) return false;
  const repo = callee.expression;
  if (!ts.isPropertyAccessExpression(repo) || repo.name.text !== "jobs") return false;
  const owner = ts.isPropertyAccessExpression(repo.expression) ? repo.expression.name : repo.expression;
  return ts.isIdentifier(owner) && /store$/i.test(owner.text);
}
