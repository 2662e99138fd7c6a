import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { RunEvent } from "../core/events.js";
import type { Store } from "./types.js";

let store: Store;
let runId: string;

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;

  beforeEach(async () => {
    opened = await backend.open();
    store = opened.store;
    runId = (await store.runs.create({ kind: "workflow", name: "deploy" })).id;
  });

  afterEach(() => opened.dispose());

  function output(seq: number, data = `line ${seq}\n`, run = runId): RunEvent {
    return {
      run_id: run,
      seq,
      ts: "2026-01-01T00:00:00.000Z",
      type: "step.output",
      step: "build",
      host: "local",
      stream: "stdout",
      data,
    };
  }

  function outputs(from: number, to: number): RunEvent[] {
    const events: RunEvent[] = [];
    for (let seq = from; seq <= to; seq++) events.push(output(seq));
    return events;
  }

  async function storedSeqs(): Promise<number[]> {
    return (await store.events.list(runId, { limit: 10_000 })).map((event) => event.seq);
  }

  describe("dropOldestOutput", () => {
    it("deletes whole output events, oldest first, until at least the bytes asked for; keeps other events", async () => {
      const notice: RunEvent = {
        run_id: runId,
        seq: 3,
        ts: "2026-01-01T00:00:00.000Z",
        type: "notice",
        level: "info",
        message: "kept",
      };
      await store.events.append([
        output(1, "aaaa\n"),
        output(2, "bbbb\n"),
        notice,
        output(4, "cccc\n"),
        output(5, "dddd\n"),
      ]);
      // 6 bytes asked: the first event (5) is not enough, the second makes 10.
      expect(await store.events.dropOldestOutput(runId, 6)).toBe(10);
      expect(await storedSeqs()).toEqual([3, 4, 5]);
      expect(await store.events.dropOldestOutput(runId, 1000)).toBe(10);
      expect(await storedSeqs()).toEqual([3]);
      expect(await store.events.dropOldestOutput(runId, 10)).toBe(0);
    });
  });

  describe("appendEvents", () => {
    it("stores nothing for a replica that no longer carries the run (REPLICA_FENCED)", async () => {
      const carried = (await store.runs.create({ kind: "workflow", name: "fenced", replica_id: "replica-a" }))
        .id;
      const job = await store.jobs.create({ run_id: carried, requirements: { labels: [] }, payload: {} });
      await store.events.append([output(1, "a\n", carried)], { carrier: "replica-a" });
      // Replica B adopts the run; A's engine, still going, tries to store more.
      expect((await store.fleet.adoptRuns("replica-b", { own: true })).map((run) => run.id)).toContain(
        carried,
      );
      for (const opts of [{ carrier: "replica-a" }, { carrier: "replica-a", job: { id: job.id, seq: 1 } }]) {
        await expect(store.events.append([output(2, "b\n", carried)], opts)).rejects.toMatchObject({
          code: "REPLICA_FENCED",
        });
      }
      // Many events take the transaction on PostgreSQL: fenced there too.
      const many = Array.from({ length: 10_001 }, (_, i) => output(i + 2, "x\n", carried));
      await expect(store.events.append(many, { carrier: "replica-a" })).rejects.toMatchObject({
        code: "REPLICA_FENCED",
      });
      expect((await store.events.list(carried)).map((event) => event.seq)).toEqual([1]);
      expect((await store.runs.get(carried))?.last_seq).toBe(1);
      expect((await store.jobs.get(job.id))?.last_event_seq).toBe(0);
      await store.events.append([output(2, "b\n", carried)], { carrier: "replica-b" });
      expect((await store.events.list(carried)).map((event) => event.seq)).toEqual([1, 2]);
    });

    it("stores events as given and gives them back parsed, in seq order", async () => {
      const events: RunEvent[] = [
        {
          run_id: runId,
          seq: 1,
          ts: "2026-01-01T00:00:00.000Z",
          type: "run.queued",
          kind: "workflow",
          name: "deploy",
        },
        {
          run_id: runId,
          seq: 3,
          ts: "2026-01-01T00:00:02.000Z",
          type: "vars.exported",
          step: "b",
          host: "h",
          vars: { A: "1" },
        },
        {
          run_id: runId,
          seq: 2,
          ts: "2026-01-01T00:00:01.000Z",
          type: "step.started",
          step: "b",
          host: "h",
          attempt: 1,
        },
      ];
      expect(await store.events.append(events)).toEqual({ duplicate: false, inserted: 3 });
      expect(await store.events.list(runId)).toEqual([events[0], events[2], events[1]]);
      expect(await store.events.lastSeq(runId)).toBe(3);
      expect((await store.runs.get(runId))?.last_seq).toBe(3);
    });

    it("stores a batch sent twice for the same job once, and says the second was a duplicate", async () => {
      const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
      const batch = outputs(1, 5);

      expect(await store.events.append(batch, { job: { id: job.id, seq: 5 } })).toEqual({
        duplicate: false,
        inserted: 5,
      });
      expect(await store.events.append(batch, { job: { id: job.id, seq: 5 } })).toEqual({
        duplicate: true,
        inserted: 0,
      });

      expect(await storedSeqs()).toEqual([1, 2, 3, 4, 5]);
      expect((await store.jobs.get(job.id))?.last_event_seq).toBe(5);
    });

    it("writes nothing for a batch older than the job's last stored one, even with new event seqs", async () => {
      const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
      await store.events.append(outputs(1, 2), { job: { id: job.id, seq: 2 } });
      expect(await store.events.append(outputs(3, 4), { job: { id: job.id, seq: 1 } })).toEqual({
        duplicate: true,
        inserted: 0,
      });
      expect(await storedSeqs()).toEqual([1, 2]);
      expect(await store.events.append(outputs(3, 4), { job: { id: job.id, seq: 4 } })).toMatchObject({
        inserted: 2,
      });
      expect(await storedSeqs()).toEqual([1, 2, 3, 4]);
    });

    it("never stores one (run_id, seq) twice, keeping the first event", async () => {
      await store.events.append([output(1, "first"), output(2)]);
      expect(await store.events.append([output(2, "again"), output(1, "second"), output(3)])).toEqual({
        duplicate: false,
        inserted: 1,
      });
      const events = await store.events.list(runId);
      expect(events.map((event) => event.seq)).toEqual([1, 2, 3]);
      expect(events[0]).toMatchObject({ data: "first" });
    });

    it("stores nothing and leaves the job's seq alone when one event of the batch cannot be stored", async () => {
      const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
      const batch = [...outputs(1, 150), output(151, "x", "run_missing")];
      await expect(store.events.append(batch, { job: { id: job.id, seq: 1 } })).rejects.toMatchObject({
        code: "NOT_FOUND",
      });
      expect(await storedSeqs()).toEqual([]);
      expect((await store.jobs.get(job.id))?.last_event_seq).toBe(0);
      expect(await store.events.lastSeq(runId)).toBe(0);
      expect(await store.events.append(outputs(1, 150), { job: { id: job.id, seq: 1 } })).toMatchObject({
        inserted: 150,
      });
    });

    it("answers NOT_FOUND for a batch of a job that does not exist", async () => {
      await expect(
        store.events.append(outputs(1, 1), { job: { id: "job_nope", seq: 1 } }),
      ).rejects.toMatchObject({
        code: "NOT_FOUND",
      });
      expect(await storedSeqs()).toEqual([]);
    });

    it("never lowers a run's last seq", async () => {
      await store.events.append(outputs(5, 6));
      await store.events.append(outputs(1, 2));
      expect(await store.events.lastSeq(runId)).toBe(6);
    });

    it("keeps each run's last seq when one batch carries events of two runs", async () => {
      const other = (await store.runs.create({ kind: "workflow", name: "other" })).id;
      await store.events.append([output(1), output(1, "o", other), output(2, "o", other), output(2)]);
      expect(await store.events.lastSeq(runId)).toBe(2);
      expect(await store.events.lastSeq(other)).toBe(2);
      expect(await store.events.lastSeq("run_unknown")).toBeUndefined();
    });

    it("stores 10,000 small events in batches of 100 quickly (the hot path)", async () => {
      const job = await store.jobs.create({ run_id: runId, requirements: { labels: [] }, payload: {} });
      const batches: RunEvent[][] = [];
      for (let b = 0; b < 100; b++) batches.push(outputs(b * 100 + 1, b * 100 + 100));
      const started = performance.now();
      for (const [b, batch] of batches.entries())
        await store.events.append(batch, { job: { id: job.id, seq: b + 1 } });
      const seconds = (performance.now() - started) / 1000;
      const rate = Math.round(10_000 / seconds);
      console.log(
        `appendEvents: 10,000 events in batches of 100: ${(seconds * 1000).toFixed(0)} ms, ${rate} events/s`,
      );
      expect(await store.events.lastSeq(runId)).toBe(10_000);
      expect(rate).toBeGreaterThan(5_000);
    });
  });

  describe("listEvents", () => {
    it("returns only the events after a seq, as a client resuming with ?after= needs", async () => {
      await store.events.append(outputs(1, 10));
      expect((await store.events.list(runId, { after: 7 })).map((event) => event.seq)).toEqual([8, 9, 10]);
      expect(await store.events.list(runId, { after: 10 })).toEqual([]);
    });

    it("pages with limit and after", async () => {
      await store.events.append(outputs(1, 10));
      const first = await store.events.list(runId, { limit: 4 });
      const second = await store.events.list(runId, { after: first.at(-1)?.seq, limit: 4 });
      expect(first.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
      expect(second.map((event) => event.seq)).toEqual([5, 6, 7, 8]);
    });

    it("pages backwards with before: the newest events below it, in seq order, as a log's tail is shown first", async () => {
      await store.events.append(outputs(1, 10));
      const tail = await store.events.list(runId, { before: 11, limit: 4 });
      expect(tail.map((event) => event.seq)).toEqual([7, 8, 9, 10]);
      const older = await store.events.list(runId, { before: tail[0]?.seq, limit: 4 });
      expect(older.map((event) => event.seq)).toEqual([3, 4, 5, 6]);
      const oldest = await store.events.list(runId, { before: older[0]?.seq, limit: 4 });
      expect(oldest.map((event) => event.seq)).toEqual([1, 2]);
      expect(await store.events.list(runId, { before: 1 })).toEqual([]);
      // With after too: the window between them.
      expect((await store.events.list(runId, { after: 2, before: 6, limit: 2 })).map((e) => e.seq)).toEqual([
        4, 5,
      ]);
    });

    it("returns at most 1000 events by default", async () => {
      await store.events.append(outputs(1, 1001));
      expect(await store.events.list(runId)).toHaveLength(1000);
    });

    it("returns nothing for a run without events", async () => {
      expect(await store.events.list("run_unknown")).toEqual([]);
    });
  });
});
