import pg from "pg";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { output, stepFinished, ts } from "../../test/helpers/appended-events.js";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { UnnumberedEvent } from "../core/events.js";
import { knownRun, rememberRun } from "./known-runs.js";
import type { Store } from "./types.js";

/*
 * `appendRunEvents` in one statement on PostgreSQL, where this process knows the run's seq and
 * log state (known-runs.ts): the rest of its tests in append-run-events.test.ts, its attacks in
 * test/append-one-statement-attacks.test.ts.
 */

describe.each(storeBackends.filter((backend) => backend.name === "postgres"))(
  "appendRunEvents on $name, in one statement where this process knows the run's state",
  (backend) => {
    let opened: TestStore;
    let store: Store;
    let queries: MockInstance;

    beforeEach(async () => {
      opened = await backend.open();
      store = opened.store;
      queries = vi.spyOn(pg.Client.prototype, "query");
    });

    afterEach(async () => {
      queries.mockRestore();
      await opened.dispose();
    });

    /** A run made as the server makes it (its state known from then on), and a job of it its runner holds. */
    async function runWithJob(maxBytes = 100) {
      const { record } = await store.runs.createWithEvent(
        { kind: "workflow", name: "one-statement", replica_id: "replica-a" },
        { ts, type: "run.queued", kind: "workflow", name: "one-statement" },
        { maxBytes, storedBytes: 0 },
      );
      const job = await store.jobs.create({ run_id: record.id, requirements: { labels: [] }, payload: {} });
      await store.jobs.claim(
        { id: "runner-1", group: "default", labels: [], tenant_id: null, shared: false, isolation: "none" },
        60_000,
      );
      return { id: record.id, job };
    }

    /** Statements sent while `work` ran (each of a transaction's, and its begin and commit). */
    async function statementsOf<T>(work: () => Promise<T>): Promise<{ result: T; statements: number }> {
      queries.mockClear();
      const result = await work();
      return { result, statements: queries.mock.calls.length };
    }

    it("stores a runner's batch, with the engine's events before it, in one statement, and each later one too", async () => {
      const { id, job } = await runWithJob();
      const first = await statementsOf(() =>
        store.events.appendForRun(id, [output("hi\n")], {
          lead: [{ ts, type: "run.started", name: "one-statement" }],
          job: { id: job.id, seq: 1, runnerId: "runner-1" },
          carrier: "replica-a",
          record: { startedAt: ts },
        }),
      );
      expect(first.statements).toBe(1);
      expect(first.result.events.map((event) => [event.seq, event.type])).toEqual([
        [2, "run.started"],
        [3, "step.output"],
      ]);
      expect(first.result.leading).toBe(1);
      const second = await statementsOf(() =>
        store.events.appendForRun(id, [output("again\n"), stepFinished()], {
          job: { id: job.id, seq: 2, runnerId: "runner-1" },
          carrier: "replica-a",
        }),
      );
      expect(second.statements).toBe(1);
      expect(second.result.events.map((event) => event.seq)).toEqual([4, 5]);
      expect(await store.jobs.get(job.id)).toMatchObject({ status: "running", last_event_seq: 2 });
      expect(await store.runs.get(id)).toMatchObject({ status: "running", started_at: ts, last_seq: 5 });
      // The same batch again (a runner's resend): a duplicate, the usual way, nothing stored twice.
      const again = await store.events.appendForRun(id, [output("again\n"), stepFinished()], {
        job: { id: job.id, seq: 2, runnerId: "runner-1" },
        carrier: "replica-a",
      });
      expect(again.duplicate).toBe(true);
      expect((await store.events.list(id, { limit: 10 })).map((event) => event.seq)).toEqual([1, 2, 3, 4, 5]);
    });

    it("goes the usual way when another process wrote the run meanwhile, numbering and capping from the row, the job's batch taken once", async () => {
      const { id, job } = await runWithJob(8);
      // Another process (a replica) stored 6 bytes of output at seq 2: this one still knows seq 1, 0 bytes.
      const known = knownRun(id);
      await store.events.appendForRun(id, [output("12345\n")]);
      rememberRun(id, known);
      const batch = await statementsOf(() =>
        store.events.appendForRun(id, [output("abcdef\n")], {
          job: { id: job.id, seq: 1, runnerId: "runner-1" },
        }),
      );
      expect(batch.statements).toBeGreaterThan(1);
      // Numbered after seq 2, and cut: the row's 6 bytes and these 7 pass the cap of 8.
      expect(batch.result).toEqual({ duplicate: false, events: [], json: [] });
      expect(await store.jobs.get(job.id)).toMatchObject({ status: "running", last_event_seq: 1 });
      const finished = await store.events.appendForRun(id, [stepFinished()], {
        job: { id: job.id, seq: 2, runnerId: "runner-1" },
      });
      expect(finished.events.map((event) => [event.seq, event.type])).toEqual([
        [3, "notice"],
        [4, "step.finished"],
      ]);
    });

    it("stops trying one statement for a run whose row another process keeps changing (its runner's batches stored by another replica)", async () => {
      const { id, job } = await runWithJob(1_000_000);
      const counts: number[] = [];
      for (let seq = 1; seq <= 4; seq++) {
        // Another process stores a batch: this one's knowledge of the row is a step behind.
        const stale = knownRun(id);
        await store.events.appendForRun(id, [output(`theirs ${seq}\n`)]);
        rememberRun(id, stale);
        const batch = await statementsOf(() =>
          store.events.appendForRun(id, [output(`mine ${seq}\n`)], {
            job: { id: job.id, seq, runnerId: "runner-1" },
          }),
        );
        expect(batch.result.events).toHaveLength(1);
        counts.push(batch.statements);
      }
      // Tried and missed twice (one statement more than the transaction's four), then not tried.
      expect(counts).toEqual([5, 5, 4, 4]);
      expect((await store.events.list(id, { limit: 20 })).map((event) => event.seq)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8, 9,
      ]);
    });

    it("keeps trying one statement after batches it sends none for (an agent's usage): those say nothing of another writer", async () => {
      const { id, job } = await runWithJob(1_000_000);
      const counts: number[] = [];
      for (let seq = 1; seq <= 3; seq++) {
        const usage: UnnumberedEvent = {
          ts,
          type: "agent.usage",
          agent: "openai",
          model: "m",
          input_tokens: seq,
          output_tokens: seq,
        };
        const batch = await statementsOf(() =>
          store.events.appendForRun(id, [output(`turn ${seq}\n`), usage], {
            job: { id: job.id, seq, runnerId: "runner-1" },
          }),
        );
        counts.push(batch.statements);
      }
      const plain = await statementsOf(() =>
        store.events.appendForRun(id, [output("done\n")], {
          job: { id: job.id, seq: 4, runnerId: "runner-1" },
        }),
      );
      // Each usage batch the usual way (it records the usage beside the events), none counted as a miss.
      expect(counts.every((count) => count > 1)).toBe(true);
      expect(plain.statements).toBe(1);
      expect((await store.events.list(id, { limit: 20 })).map((event) => event.seq)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8,
      ]);
    });

    it("stores nothing in one statement for a replica that no longer carries the run, another runner, or a job that does not exist", async () => {
      const { id, job } = await runWithJob();
      await expect(
        store.events.appendForRun(id, [output("late\n")], {
          job: { id: job.id, seq: 1, runnerId: "runner-1" },
          carrier: "replica-b",
        }),
      ).rejects.toMatchObject({ code: "REPLICA_FENCED" });
      const theirs = await store.events.appendForRun(id, [output("not yours\n")], {
        job: { id: job.id, seq: 1, runnerId: "runner-2" },
      });
      expect(theirs.duplicate).toBe(true);
      await expect(
        store.events.appendForRun(id, [output("nobody's\n")], { job: { id: "job_missing", seq: 1 } }),
      ).rejects.toMatchObject({ code: "NOT_FOUND" });
      expect(await store.jobs.get(job.id)).toMatchObject({ status: "assigned", last_event_seq: 0 });
      expect((await store.events.list(id, { limit: 10 })).map((event) => event.seq)).toEqual([1]);
      // And the right runner's batch after all that still goes in one statement.
      const mine = await statementsOf(() =>
        store.events.appendForRun(id, [output("mine\n")], {
          job: { id: job.id, seq: 1, runnerId: "runner-1" },
        }),
      );
      expect(mine.result.events.map((event) => event.seq)).toEqual([2]);
      expect(mine.statements).toBe(1);
    });
  },
);
