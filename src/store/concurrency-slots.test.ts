import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { RunRecord } from "./run-records.js";
import type { Store } from "./types.js";

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let clock: Date;

  beforeEach(async () => {
    clock = new Date("2026-01-01T00:00:00.000Z");
    opened = await backend.open({ now: () => clock });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  /** A queued run of the group, one second after the last. */
  async function queued(group: string, tenant: string | null = "acme"): Promise<RunRecord> {
    clock = new Date(clock.getTime() + 1000);
    return store.runs.create({
      kind: "workflow",
      name: "deploy",
      tenant_id: tenant,
      concurrency_group: group,
    });
  }

  const claim = (run: RunRecord) => ({
    run_id: run.id,
    tenant_id: run.tenant_id,
    group: run.concurrency_group ?? "",
    created_at: run.created_at,
  });

  describe("concurrency slots", () => {
    it("lets one run of a group hold the slot; the next waits, naming the holder", async () => {
      const first = await queued("deploy-prod");
      const second = await queued("deploy-prod");
      expect(await store.concurrency.take(claim(first))).toBe(true);
      expect(await store.concurrency.take(claim(second))).toBe(false);
      expect(await store.concurrency.waitingFor(claim(second))).toEqual({
        why: "holds",
        run: { run_id: first.id, status: "queued" },
      });
      expect(await store.concurrency.waitingFor(claim(first))).toBeUndefined();
    });

    it("frees the slot when its run ends, whoever ends it, without a release", async () => {
      const first = await queued("g");
      const second = await queued("g");
      await store.concurrency.take(claim(first));
      await store.runs.update(first.id, { status: "running" });
      expect(await store.concurrency.take(claim(second))).toBe(false);
      await store.runs.markInterruptedRunning({ code: "RUNNER_LOST", message: "gone" }, { ids: [first.id] });
      expect(await store.concurrency.take(claim(second))).toBe(true);
    });

    it("hands the slot on in submit order, whoever asks first", async () => {
      const holder = await queued("g");
      const older = await queued("g");
      const newer = await queued("g");
      await store.concurrency.take(claim(holder));
      await store.runs.update(holder.id, { status: "success" });
      expect(await store.concurrency.take(claim(newer))).toBe(false);
      expect(await store.concurrency.waitingFor(claim(newer))).toEqual({
        why: "ahead",
        run: { run_id: older.id, status: "queued" },
      });
      expect(await store.concurrency.take(claim(older))).toBe(true);
      await store.runs.update(older.id, { status: "canceled" });
      expect(await store.concurrency.take(claim(newer))).toBe(true);
    });

    it("is free again at once after a release", async () => {
      const first = await queued("g");
      const second = await queued("g");
      await store.concurrency.take(claim(first));
      // Ended and released before its record says so: the next run need not wait for the record.
      await store.runs.update(first.id, { status: "running" });
      expect(await store.concurrency.release(first.id)).toBe(true);
      expect(await store.concurrency.take(claim(second))).toBe(true);
      expect(await store.concurrency.release(first.id)).toBe(false);
    });

    it("gives a run that holds the slot (carried on after a restart) the slot again", async () => {
      const first = await queued("g");
      await store.concurrency.take(claim(first));
      expect(await store.concurrency.take(claim(first))).toBe(true);
    });

    it("keeps tenants apart: the same group name of another tenant, or of none, is another slot", async () => {
      const acme = await queued("deploy", "acme");
      const globex = await queued("deploy", "globex");
      const none = await queued("deploy", null);
      expect(await store.concurrency.take(claim(acme))).toBe(true);
      expect(await store.concurrency.take(claim(globex))).toBe(true);
      expect(await store.concurrency.take(claim(none))).toBe(true);
    });

    it("lists the group's live runs queued before a run, for cancel_in_progress", async () => {
      const done = await queued("g");
      await store.runs.update(done.id, { status: "success" });
      const running = await queued("g");
      await store.runs.update(running.id, { status: "running" });
      const waiting = await queued("g");
      await queued("other");
      const newest = await queued("g");
      expect(await store.concurrency.runsBefore(claim(newest))).toEqual([
        { run_id: running.id, status: "running" },
        { run_id: waiting.id, status: "queued" },
      ]);
    });

    it("gives the slot to exactly one of many runs asking at once", async () => {
      const runs = [];
      clock = new Date("2026-01-01T00:00:10.000Z");
      // Same queue time: submit order is then the id's order.
      for (let i = 0; i < 8; i++)
        runs.push(
          await store.runs.create({ kind: "workflow", name: "d", tenant_id: "acme", concurrency_group: "g" }),
        );
      const results = await Promise.all(runs.map((run) => store.concurrency.take(claim(run))));
      expect(results.filter(Boolean)).toHaveLength(1);
      const first = [...runs].sort((a, b) => a.id.localeCompare(b.id))[0]!;
      expect(results[runs.indexOf(first)]).toBe(true);
    });
  });
});
