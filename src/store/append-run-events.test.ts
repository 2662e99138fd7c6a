import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { output, stepFinished, ts } from "../../test/helpers/appended-events.js";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { RunEvent, UnnumberedEvent } from "../core/events.js";
import type { Store } from "./types.js";

describe.each(storeBackends)("appendRunEvents on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  /** Another writer: a second store on the same database on PostgreSQL (another replica). */
  let other: Store;
  let runId: string;

  beforeEach(async () => {
    opened = await backend.open();
    store = opened.store;
    // SQLite is one server process: its writers share the process's one store.
    other = backend.name === "postgres" ? await opened.reopen() : store;
    runId = (await store.runs.create({ kind: "workflow", name: "deploy" })).id;
  });

  afterEach(async () => {
    if (other !== store) await other.close();
    await opened.dispose();
  });

  async function storedEvents(): Promise<RunEvent[]> {
    return store.events.list(runId, { limit: 10_000 });
  }

  it("numbers a batch with the run's next seqs, in the batch's order, and answers the events as stored", async () => {
    const first = await store.events.appendForRun(runId, [
      { ts, type: "run.queued", kind: "workflow", name: "deploy" },
    ]);
    const queued = { ts, type: "run.queued", kind: "workflow", name: "deploy", run_id: runId, seq: 1 };
    expect(first).toEqual({ duplicate: false, events: [queued], json: [JSON.stringify(queued)] });
    // The text answered is the text stored, which event streams send as it is.
    expect((await store.events.listSerialized(runId)).map((event) => event.json)).toEqual(first.json);
    const second = await other.events.appendForRun(runId, [output("a\n"), output("b\n")]);
    expect(second.events.map((event) => event.seq)).toEqual([2, 3]);
    expect((await storedEvents()).map((event) => [event.seq, event.type])).toEqual([
      [1, "run.queued"],
      [2, "step.output"],
      [3, "step.output"],
    ]);
    expect(await store.events.lastSeq(runId)).toBe(3);
  });

  it("gives two writers appending to one run at once a dense sequence with no seq twice (300 batches)", async () => {
    const writers = [store, other];
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        writers[i % 2]?.events.appendForRun(runId, [
          output(`w${i % 2} b${i} e1\n`),
          output(`w${i % 2} b${i} e2\n`),
        ]),
      ),
    );
    const events = await storedEvents();
    expect(events.map((event) => event.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    // Every event of every batch is there once, each batch's two events one after the other.
    const texts = events.map((event) => (event.type === "step.output" ? event.data : ""));
    expect(new Set(texts).size).toBe(600);
    for (let i = 0; i < 600; i += 2) expect(texts[i + 1]).toBe(texts[i]?.replace("e1", "e2"));
    expect(await store.events.lastSeq(runId)).toBe(600);
  });

  it("stores a job's batch sent to two replicas at once only once", async () => {
    const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
    const batch = [output("once\n")];
    const answers = await Promise.all([
      store.events.appendForRun(runId, batch, { job: { id: job.id, seq: 1 } }),
      other.events.appendForRun(runId, batch, { job: { id: job.id, seq: 1 } }),
    ]);
    expect(answers.map((answer) => answer.duplicate).sort()).toEqual([false, true]);
    expect((await storedEvents()).map((event) => event.seq)).toEqual([1]);
    expect((await store.jobs.get(job.id))?.last_event_seq).toBe(1);
    // Sent again later, still a duplicate; the next batch goes on.
    expect(await other.events.appendForRun(runId, batch, { job: { id: job.id, seq: 1 } })).toEqual({
      duplicate: true,
      events: [],
      json: [],
    });
    const next = await other.events.appendForRun(runId, [output("two\n")], { job: { id: job.id, seq: 2 } });
    expect(next.events.map((event) => event.seq)).toEqual([2]);
  });

  it("moves an assigned job to running with its runner's first batch, and leaves another runner's batch out", async () => {
    const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
    const isolation = "none" as const;
    await store.jobs.claim(
      { id: "runner-1", group: "default", labels: [], tenant_id: null, shared: false, isolation },
      60_000,
    );
    expect((await store.jobs.get(job.id))?.status).toBe("assigned");
    const theirs = await other.events.appendForRun(runId, [output("not yours\n")], {
      job: { id: job.id, seq: 1, runnerId: "runner-2" },
    });
    expect(theirs.duplicate).toBe(true);
    expect(await store.jobs.get(job.id)).toMatchObject({ status: "assigned", last_event_seq: 0 });
    await other.events.appendForRun(runId, [output("first\n")], {
      job: { id: job.id, seq: 1, runnerId: "runner-1" },
    });
    expect(await store.jobs.get(job.id)).toMatchObject({
      status: "running",
      last_event_seq: 1,
      runner_id: "runner-1",
    });
    expect((await storedEvents()).map((event) => event.seq)).toEqual([1]);
  });

  it("holds the run's log cap across writers and says what was cut when the step finishes", async () => {
    await store.events.appendForRun(runId, [output("123456\n")], {
      logLimit: { maxBytes: 10, storedBytes: 0 },
    });
    // The other writer never heard of the cap: the store holds it to the recorded one.
    expect((await other.events.appendForRun(runId, [output("7890\n"), output("x\n")])).events).toEqual([]);
    const finished = await other.events.appendForRun(runId, [stepFinished()]);
    expect(finished.events.map((event) => event.type)).toEqual(["notice", "step.finished"]);
    expect(finished.events[0]).toMatchObject({
      type: "notice",
      level: "warn",
      step: "build",
      host: "local",
      message: expect.stringContaining("reached its cap of 10 bytes: 7 more bytes of output"),
    });
    expect((await storedEvents()).map((event) => [event.seq, event.type])).toEqual([
      [1, "step.output"],
      [2, "notice"],
      [3, "step.finished"],
    ]);
    // Once cut, the log stays an unbroken beginning: later output is cut too.
    expect((await store.events.appendForRun(runId, [output("y")])).events).toEqual([]);
  });

  it("keeps the cap recorded first: a later writer's cap does not replace it", async () => {
    await store.events.appendForRun(runId, [output("12345\n")], {
      logLimit: { maxBytes: 8, storedBytes: 0 },
    });
    await other.events.appendForRun(runId, [output("abcdef\n")], {
      logLimit: { maxBytes: 1000, storedBytes: 0 },
    });
    expect((await storedEvents()).map((event) => event.type)).toEqual(["step.output"]);
  });

  it("counts output a run stored before its cap was recorded", async () => {
    await store.events.appendForRun(runId, [output("abc\n")], { logLimit: { maxBytes: 10, storedBytes: 8 } });
    expect(await storedEvents()).toEqual([]);
  });

  it("trims a rolling log's oldest output to three quarters of its cap, whichever writer crossed it", async () => {
    await store.events.appendForRun(runId, [output("aaaaaaaaa\n")], {
      logLimit: { maxBytes: 20, storedBytes: 0, rolling: true },
    });
    await other.events.appendForRun(runId, [
      output("bbbbbbbbb\n"),
      { ts, type: "notice", level: "info", message: "kept" },
    ]);
    const crossed = await other.events.appendForRun(runId, [output("ccccccccc\n")]);
    expect(crossed.events.map((event) => event.seq)).toEqual([4]);
    // 30 bytes > 20: the oldest output goes until at most 15 remain.
    expect((await storedEvents()).map((event) => event.seq)).toEqual([3, 4]);
    await store.events.appendForRun(runId, [output("dddddddd\n"), output("e\n")]);
    // 10 + 9 + 2 = 21 > 20: "c" goes, 11 bytes remain.
    expect((await storedEvents()).map((event) => event.seq)).toEqual([3, 5, 6]);
  });

  it("stores nothing for a replica that no longer carries the run (REPLICA_FENCED)", async () => {
    const carried = (await store.runs.create({ kind: "workflow", name: "fenced", replica_id: "replica-a" }))
      .id;
    await store.fleet.adoptRuns("replica-b", { own: true });
    await expect(
      store.events.appendForRun(carried, [output("a\n")], { carrier: "replica-a" }),
    ).rejects.toMatchObject({
      code: "REPLICA_FENCED",
    });
    expect(await store.events.lastSeq(carried)).toBe(0);
    // A writer that is not the run's carrier appends as before.
    expect((await other.events.appendForRun(carried, [output("a\n")])).events.map((e) => e.seq)).toEqual([1]);
  });

  it("stores 10,000 small events in job batches of 100, numbered 1..10,000 (the hot path)", async () => {
    const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
    const batch = Array.from({ length: 100 }, (_, i) => output(`line ${i}\n`));
    for (let b = 1; b <= 100; b++)
      await store.events.appendForRun(runId, batch, { job: { id: job.id, seq: b } });
    expect(await store.events.lastSeq(runId)).toBe(10_000);
  });

  it("answers NOT_FOUND for a run or a job that does not exist, storing nothing", async () => {
    await expect(store.events.appendForRun("run_missing", [output("a\n")])).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    await expect(
      store.events.appendForRun(runId, [output("a\n")], { job: { id: "job_missing", seq: 1 } }),
    ).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await storedEvents()).toEqual([]);
  });

  it("stores a run with its run.queued as seq 1 in one call, and later appends go on from seq 2 under its log cap", async () => {
    const { record, event } = await store.runs.createWithEvent(
      { kind: "workflow", name: "capped" },
      { ts, type: "run.queued", kind: "workflow", name: "capped" },
      { maxBytes: 4, storedBytes: 0 },
    );
    expect(record.last_seq).toBe(1);
    expect(event).toEqual({
      ts,
      type: "run.queued",
      kind: "workflow",
      name: "capped",
      run_id: record.id,
      seq: 1,
    });
    expect(await store.events.list(record.id, { limit: 10 })).toEqual([event]);
    // The cap was recorded with the run: a later writer that names none still keeps to it.
    await other.events.appendForRun(record.id, [output("ab\n")]);
    await other.events.appendForRun(record.id, [output("abcdefgh\n"), stepFinished()]);
    const stored = await store.events.list(record.id, { limit: 10 });
    expect(stored.map((e) => [e.seq, e.type])).toEqual([
      [1, "run.queued"],
      [2, "step.output"],
      [3, "notice"],
      [4, "step.finished"],
    ]);
    expect(stored[2]).toMatchObject({ type: "notice", level: "warn" });
    expect((await store.runs.get(record.id))?.last_seq).toBe(4);
  });

  it("stores what a batch changes on the run's record in its transaction: a queued run starts, its steps and its end", async () => {
    const started = await store.events.appendForRun(
      runId,
      [
        { ts, type: "run.started", name: "deploy" },
        { ts, type: "step.started", step: "build", host: "local", attempt: 1 },
      ],
      {
        record: {
          startedAt: ts,
          patch: {
            steps: [{ name: "build", host: "local", status: "running", exit_code: null, attempts: 1 }],
          },
        },
      },
    );
    expect(started.events.map((event) => event.seq)).toEqual([1, 2]);
    expect(await store.runs.get(runId)).toMatchObject({
      status: "running",
      started_at: ts,
      last_seq: 2,
      steps: [{ name: "build", status: "running" }],
    });
    const end = "2026-01-01T00:00:05.000Z";
    await other.events.appendForRun(
      runId,
      [
        stepFinished(),
        { ts: end, type: "run.finished", status: "success", duration_ms: 5, vars: { A: "1" } },
      ],
      {
        record: {
          patch: {
            status: "success",
            finished_at: end,
            vars: { A: "1" },
            steps: [{ name: "build", host: "local", status: "success", exit_code: 0, attempts: 1 }],
            error: null,
          },
        },
      },
    );
    expect(await store.runs.get(runId)).toMatchObject({
      status: "success",
      started_at: ts,
      finished_at: end,
      vars: { A: "1" },
      last_seq: 4,
      steps: [{ name: "build", status: "success", exit_code: 0 }],
    });
  });

  it("leaves a run that is no longer queued as it is on a late start, and stores the batch", async () => {
    await store.runs.update(runId, { status: "canceled", finished_at: ts });
    const late = "2026-01-01T00:00:09.000Z";
    await store.events.appendForRun(runId, [{ ts: late, type: "run.started", name: "deploy" }], {
      record: { startedAt: late },
    });
    expect(await store.runs.get(runId)).toMatchObject({ status: "canceled", started_at: null, last_seq: 1 });
    // A batch that starts and ends the run at once ends it, started then.
    const quick = (await store.runs.create({ kind: "workflow", name: "quick" })).id;
    await store.events.appendForRun(
      quick,
      [
        { ts: late, type: "run.started", name: "quick" },
        { ts: late, type: "run.finished", status: "failed", duration_ms: 0 },
      ],
      { record: { startedAt: late, patch: { status: "failed", finished_at: late } } },
    );
    expect(await store.runs.get(quick)).toMatchObject({
      status: "failed",
      started_at: late,
      finished_at: late,
    });
  });

  it("changes the run's record only when the batch is stored: a duplicate job batch changes nothing", async () => {
    const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
    const batch = [{ ts, type: "run.started", name: "deploy" } as UnnumberedEvent];
    await store.events.appendForRun(runId, batch, { job: { id: job.id, seq: 1 } });
    const again = await other.events.appendForRun(runId, batch, {
      job: { id: job.id, seq: 1 },
      record: { startedAt: ts },
    });
    expect(again).toEqual({ duplicate: true, events: [], json: [] });
    expect(await store.runs.get(runId)).toMatchObject({ status: "queued", started_at: null, last_seq: 1 });
  });

  it("stores the engine's events ahead of a job's batch in its transaction, the runner's notices counted as output and the engine's not; a duplicate stores neither", async () => {
    const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
    const runner = {
      id: "runner-1",
      group: "default",
      labels: [],
      tenant_id: null,
      shared: false,
      isolation: "none",
    } as const;
    await store.jobs.claim(runner, 60_000);
    const engineNotice = {
      ts,
      type: "notice",
      level: "info",
      message: "an engine's notice, not cut",
    } as const;
    const runnerNotice = {
      ts,
      type: "notice",
      level: "warn",
      message: "a runner's notice",
      step: "build",
      host: "local",
    } as const;
    const started = { ts, type: "step.started", step: "build", host: "local", attempt: 1 } as const;
    const joined = await store.events.appendForRun(runId, [output("12345678\n"), runnerNotice], {
      lead: [{ ts, type: "run.started", name: "deploy" }, engineNotice, started],
      job: { id: job.id, seq: 1, runnerId: "runner-1" },
      logLimit: { maxBytes: 10, storedBytes: 0 },
      record: { startedAt: ts },
    });
    // The runner's notice would take its output past the cap: cut; the engine's notice is not.
    expect(joined.events.map((event) => [event.seq, event.type])).toEqual([
      [1, "run.started"],
      [2, "notice"],
      [3, "step.started"],
      [4, "step.output"],
    ]);
    expect(joined.leading).toBe(3);
    expect(joined.json).toHaveLength(4);
    expect(await store.runs.get(runId)).toMatchObject({ status: "running", started_at: ts, last_seq: 4 });
    expect(await store.jobs.get(job.id)).toMatchObject({ status: "running", last_event_seq: 1 });
    // The same batch again: its engine's events are not stored either (their writer stores them).
    const again = await other.events.appendForRun(runId, [output("late\n")], {
      lead: [{ ts, type: "notice", level: "info", message: "stored on its own" }],
      job: { id: job.id, seq: 1, runnerId: "runner-1" },
    });
    expect(again).toEqual({ duplicate: true, events: [], json: [] });
    expect(await store.events.lastSeq(runId)).toBe(4);
  });

  it("stores a batch after the seq its writer expects, and as usual once another writer stored meanwhile", async () => {
    const { record } = await store.runs.createWithEvent(
      { kind: "workflow", name: "expected", replica_id: "replica-a" },
      { ts, type: "run.queued", kind: "workflow", name: "expected" },
      { maxBytes: 8, storedBytes: 0 },
    );
    const id = record.id;
    const started = await store.events.appendForRun(id, [{ ts, type: "run.started", name: "expected" }], {
      expectedLastSeq: 1,
      carrier: "replica-a",
      record: { startedAt: ts },
    });
    expect(started.events.map((event) => event.seq)).toEqual([2]);
    expect(await store.runs.get(id)).toMatchObject({ status: "running", started_at: ts, last_seq: 2 });
    // Another writer's batches (a runner's output, the second cut past the cap) move the run on.
    await other.events.appendForRun(id, [output("abc\n")]);
    await other.events.appendForRun(id, [output("0123456789\n")]);
    // The writer still expects seq 2: its batch goes after 3 all the same, and says what was cut.
    const finished = await store.events.appendForRun(id, [stepFinished()], {
      expectedLastSeq: 2,
      carrier: "replica-a",
    });
    expect(finished.events.map((event) => [event.seq, event.type])).toEqual([
      [4, "notice"],
      [5, "step.finished"],
    ]);
    // Expecting the right seq, for a replica that no longer carries the run: nothing is stored.
    await store.fleet.adoptRuns("replica-b", { own: true });
    await expect(
      store.events.appendForRun(id, [{ ts, type: "notice", level: "info", message: "late" }], {
        expectedLastSeq: 5,
        carrier: "replica-a",
      }),
    ).rejects.toMatchObject({ code: "REPLICA_FENCED" });
    const stored = await store.events.list(id, { limit: 10 });
    expect(stored.map((event) => [event.seq, event.type])).toEqual([
      [1, "run.queued"],
      [2, "run.started"],
      [3, "step.output"],
      [4, "notice"],
      [5, "step.finished"],
    ]);
    expect(await store.events.lastSeq(id)).toBe(5);
  });
});
