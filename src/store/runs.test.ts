import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { errorInfo } from "../core/errors.js";
import type { Store } from "./types.js";

let store: Store;
let clock: Date;

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;

  beforeEach(async () => {
    clock = new Date("2026-01-01T00:00:00.000Z");
    opened = await backend.open({ now: () => clock });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  function minute(n: number): string {
    return new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString();
  }

  describe("runs", () => {
    it("creates a queued run with empty vars, steps and error", async () => {
      const run = await store.runs.create({
        kind: "workflow",
        name: "deploy",
        spec: { text: "steps: []", vars: { A: "1" } },
        tenant_id: "t1",
        created_by: "tok_1",
      });
      expect(run.id).toMatch(/^run_/);
      expect(await store.runs.get(run.id)).toEqual({
        id: run.id,
        kind: "workflow",
        name: "deploy",
        status: "queued",
        tenant_id: "t1",
        created_by: "tok_1",
        created_by_user: null,
        authored_by: "tok_1",
        spec: { text: "steps: []", vars: { A: "1" } },
        vars: {},
        steps: [],
        error: null,
        created_at: "2026-01-01T00:00:00.000Z",
        started_at: null,
        finished_at: null,
        last_seq: 0,
        last_notify_error: null,
        concurrency_group: null,
        trigger: "api",
        trigger_ref: null,
        saved_workflow: null,
        saved_version: null,
        rolled_back: false,
        rollback_failed: null,
        retry_of: null,
        retry_from: null,
        parent_run_id: null,
        parent_step: null,
      });
    });

    it("links a retry to the run it retries, both ways", async () => {
      const first = await store.runs.create({ kind: "workflow", name: "deploy", tenant_id: "t1" });
      const retry = await store.runs.create({
        kind: "workflow",
        name: "deploy",
        tenant_id: "t1",
        retry_of: first.id,
        retry_from: "build",
      });
      expect(await store.runs.get(retry.id)).toMatchObject({ retry_of: first.id, retry_from: "build" });
      expect(await store.runs.get(first.id)).toMatchObject({ retry_of: null, retry_from: null });
      expect((await store.runs.retriesOf(first.id)).map((r) => [r.id, r.retry_from, r.status])).toEqual([
        [retry.id, "build", "queued"],
      ]);
      expect(await store.runs.retriesOf(retry.id)).toEqual([]);
    });

    it("keeps how a failed run's rollbacks went", async () => {
      const a = await store.runs.create({ kind: "workflow", name: "a" });
      const b = await store.runs.create({ kind: "workflow", name: "b" });
      await store.runs.update(a.id, { status: "failed", rolled_back: true });
      await store.runs.update(b.id, { status: "failed", rollback_failed: "rollback: deploy" });
      expect(await store.runs.get(a.id)).toMatchObject({ rolled_back: true, rollback_failed: null });
      expect(await store.runs.get(b.id)).toMatchObject({
        rolled_back: false,
        rollback_failed: "rollback: deploy",
      });
    });

    it("records what started a run and the saved workflow version it runs", async () => {
      const run = await store.runs.create({
        kind: "workflow",
        name: "nightly",
        trigger: "schedule",
        trigger_ref: "sch_1",
        saved_workflow: "nightly",
        saved_version: 3,
      });
      expect(await store.runs.get(run.id)).toMatchObject({
        trigger: "schedule",
        trigger_ref: "sch_1",
        saved_workflow: "nightly",
        saved_version: 3,
      });
    });

    it("takes a caller's run id once and answers CONFLICT the second time", async () => {
      await store.runs.create({ id: "run-20260212-001", kind: "workflow", name: "a" });
      await expect(
        store.runs.create({ id: "run-20260212-001", kind: "workflow", name: "b" }),
      ).rejects.toMatchObject({
        code: "CONFLICT",
      });
      expect(await store.runs.get("run-20260212-001")).toMatchObject({ name: "a" });
      // Stored with its first event too: the second run and its event are both refused.
      const queued = {
        ts: "2026-02-12T00:00:00.000Z",
        type: "run.queued" as const,
        kind: "workflow" as const,
      };
      await store.runs.createWithEvent(
        { id: "run-20260212-002", kind: "workflow", name: "c" },
        { ...queued, name: "c" },
        { maxBytes: 0, storedBytes: 0 },
      );
      await expect(
        store.runs.createWithEvent(
          { id: "run-20260212-002", kind: "workflow", name: "d" },
          { ...queued, name: "d" },
          { maxBytes: 0, storedBytes: 0 },
        ),
      ).rejects.toMatchObject({ code: "CONFLICT" });
      expect(await store.runs.get("run-20260212-002")).toMatchObject({ name: "c", last_seq: 1 });
      expect((await store.events.list("run-20260212-002")).map((event) => event.type)).toEqual([
        "run.queued",
      ]);
    });

    it("returns undefined for an unknown run", async () => {
      expect(await store.runs.get("run_nope")).toBeUndefined();
      expect(await store.runs.update("run_nope", { status: "running" })).toBeUndefined();
    });

    it("updates status, timestamps, vars, steps, error and last_notify_error, and nothing else", async () => {
      const run = await store.runs.create({ kind: "workflow", name: "deploy", spec: { keep: true } });
      const updated = await store.runs.update(run.id, {
        status: "failed",
        started_at: "2026-01-01T00:00:01Z",
        finished_at: "2026-01-01T00:00:05.5Z",
        vars: { OUT: "x" },
        steps: [{ name: "build", host: "local", status: "failed", exit_code: 2, attempts: 1 }],
        error: errorInfo("STEP_FAILED", "build failed"),
        last_notify_error: "POST http://hook: 502",
      });
      expect(updated).toEqual({
        ...run,
        status: "failed",
        started_at: "2026-01-01T00:00:01.000Z",
        finished_at: "2026-01-01T00:00:05.500Z",
        vars: { OUT: "x" },
        steps: [{ name: "build", host: "local", status: "failed", exit_code: 2, attempts: 1 }],
        error: errorInfo("STEP_FAILED", "build failed"),
        last_notify_error: "POST http://hook: 502",
      });
      expect(await store.runs.get(run.id)).toEqual(updated);
    });

    it("updates only while the status is one of ifStatus", async () => {
      const run = await store.runs.create({ kind: "workflow", name: "deploy", status: "running" });
      expect(
        await store.runs.update(run.id, { status: "canceled" }, { ifStatus: ["queued"] }),
      ).toBeUndefined();
      expect((await store.runs.get(run.id))?.status).toBe("running");
      expect(await store.runs.update(run.id, { status: "success" }, { ifStatus: ["running"] })).toMatchObject(
        {
          status: "success",
        },
      );
    });

    it("patches a run as update does without reading it back, saying whether it changed", async () => {
      const run = await store.runs.create({ kind: "workflow", name: "deploy" });
      expect(await store.runs.patch(run.id, { status: "running" }, { ifStatus: ["queued"] })).toBe(true);
      expect(await store.runs.patch(run.id, { status: "canceled" }, { ifStatus: ["queued"] })).toBe(false);
      expect(await store.runs.patch(run.id, { vars: { OUT: "x" } })).toBe(true);
      expect(await store.runs.patch("run_nope", { status: "running" })).toBe(false);
      expect(await store.runs.get(run.id)).toMatchObject({ status: "running", vars: { OUT: "x" } });
    });

    it("reads where a run is (status, tenant, last seq) without what it runs", async () => {
      const run = await store.runs.create({
        kind: "workflow",
        name: "deploy",
        tenant_id: "acme",
        spec: { a: 1 },
      });
      await store.events.appendForRun(run.id, [
        { ts: run.created_at, type: "run.queued", kind: "workflow", name: "deploy" },
      ]);
      expect(await store.runs.state(run.id)).toEqual({
        id: run.id,
        status: "queued",
        tenant_id: "acme",
        last_seq: 1,
      });
      expect(await store.runs.state("run_nope")).toBeUndefined();
    });

    it("rejects a timestamp that is not one", async () => {
      const run = await store.runs.create({ kind: "workflow", name: "deploy" });
      await expect(store.runs.update(run.id, { started_at: "yesterday" })).rejects.toMatchObject({
        code: "INVALID_INPUT",
      });
    });
  });

  describe("children", () => {
    it("lists the runs a run's call steps started, and stores one child per step at most", async () => {
      const parent = await store.runs.create({ kind: "workflow", name: "release" });
      const child = await store.runs.create({
        kind: "workflow",
        name: "deploy",
        trigger: "call",
        trigger_ref: parent.id,
        parent_run_id: parent.id,
        parent_step: "ship",
      });
      await store.runs.create({ kind: "workflow", name: "other" });
      expect((await store.runs.children(parent.id)).map((r) => r.id)).toEqual([child.id]);
      expect((await store.runs.children(parent.id, "ship"))[0]).toMatchObject({
        parent_run_id: parent.id,
        parent_step: "ship",
        trigger: "call",
      });
      expect(await store.runs.children(parent.id, "other-step")).toEqual([]);
      await expect(
        store.runs.create({
          kind: "workflow",
          name: "deploy",
          parent_run_id: parent.id,
          parent_step: "ship",
        }),
      ).rejects.toMatchObject({ code: "CONFLICT" });
    });
  });

  describe("countActiveRuns", () => {
    it("counts queued and running runs by tenant and by user, and nothing that has ended", async () => {
      const add = (status: "queued" | "running" | "success", tenant: string | null, by: string | null) =>
        store.runs.create({
          kind: "workflow",
          name: "w",
          status,
          tenant_id: tenant,
          created_by: by === null ? null : `tok_${by}`,
          created_by_user: by,
        });
      await add("queued", "acme", "usr_a");
      await add("queued", "acme", "usr_a");
      await add("running", "acme", "usr_a");
      await add("success", "acme", "usr_a");
      await add("running", "other", "usr_b");
      await add("queued", null, null);
      expect(await store.runs.countActive()).toEqual({ queued: 3, running: 2 });
      expect(await store.runs.countActive({ tenantId: "acme" })).toEqual({ queued: 2, running: 1 });
      expect(await store.runs.countActive({ tenantId: null })).toEqual({ queued: 1, running: 0 });
      expect(await store.runs.countActive({ user: "usr_a" })).toEqual({ queued: 2, running: 1 });
      expect(await store.runs.countActive({ user: "usr_b" })).toEqual({ queued: 0, running: 1 });
      expect(await store.runs.countActive({ user: "usr_c" })).toEqual({ queued: 0, running: 0 });
      expect(await store.runs.countActive({ tenantId: "zzz" })).toEqual({ queued: 0, running: 0 });
    });
  });

  describe("listRuns", () => {
    async function seed(): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const run = await store.runs.create({
          id: `run-${i}`,
          kind: i % 3 === 0 ? "agent" : "workflow",
          name: `run ${i}`,
          status: i % 2 === 0 ? "success" : "failed",
          tenant_id: i < 4 ? "acme" : null,
          created_at: minute(i),
        });
        ids.push(run.id);
      }
      return ids;
    }

    it("lists newest first in pages that follow each other without gaps or repeats", async () => {
      const ids = await seed();
      const first = await store.runs.list({ limit: 3 });
      expect(first.runs.map((run) => run.id)).toEqual(["run-6", "run-5", "run-4"]);
      expect(first.next).toBe("run-4");
      const second = await store.runs.list({ limit: 3, before: first.next });
      expect(second.runs.map((run) => run.id)).toEqual(["run-3", "run-2", "run-1"]);
      const third = await store.runs.list({ limit: 3, before: second.next });
      expect(third.runs.map((run) => run.id)).toEqual(["run-0"]);
      expect(third.next).toBeUndefined();
      expect([...first.runs, ...second.runs, ...third.runs].map((run) => run.id)).toEqual([...ids].reverse());
    });

    it("breaks ties of created_at by id, also across pages", async () => {
      for (const id of ["run-b", "run-d", "run-a", "run-c"]) {
        await store.runs.create({ id, kind: "workflow", name: id, created_at: minute(0) });
      }
      const first = await store.runs.list({ limit: 2 });
      const second = await store.runs.list({ limit: 2, before: first.next });
      expect([...first.runs, ...second.runs].map((run) => run.id)).toEqual([
        "run-d",
        "run-c",
        "run-b",
        "run-a",
      ]);
      expect(second.next).toBeUndefined();
    });

    it("filters by status, kind, tenant and name together", async () => {
      await seed();
      const ids = async (query: Parameters<Store["runs"]["list"]>[0]) =>
        (await store.runs.list(query)).runs.map((run) => run.id);
      expect(await ids({ status: "success" })).toEqual(["run-6", "run-4", "run-2", "run-0"]);
      expect(await ids({ status: ["failed", "queued"] })).toEqual(["run-5", "run-3", "run-1"]);
      expect(await ids({ kind: "agent" })).toEqual(["run-6", "run-3", "run-0"]);
      expect(await ids({ tenantId: "acme" })).toEqual(["run-3", "run-2", "run-1", "run-0"]);
      expect(await ids({ tenantId: null })).toEqual(["run-6", "run-5", "run-4"]);
      expect(await ids({ tenantId: "acme", status: "success", kind: "workflow" })).toEqual(["run-2"]);
      expect(await ids({ tenantId: "other" })).toEqual([]);
      expect(await ids({ tenantId: "acme", name: "run 3" })).toEqual(["run-3"]);
    });

    it("pages within a filter", async () => {
      await seed();
      const first = await store.runs.list({ status: "success", limit: 2 });
      const second = await store.runs.list({ status: "success", limit: 2, before: first.next });
      expect(first.runs.map((run) => run.id)).toEqual(["run-6", "run-4"]);
      expect(second.runs.map((run) => run.id)).toEqual(["run-2", "run-0"]);
      expect(second.next).toBeUndefined();
    });

    it("defaults to 50 runs a page and never returns more than 500", async () => {
      for (let i = 0; i < 501; i++) await store.runs.create({ kind: "workflow", name: `r${i}` });
      expect((await store.runs.list()).runs).toHaveLength(50);
      const big = await store.runs.list({ limit: 10_000 });
      expect(big.runs).toHaveLength(500);
      expect(big.next).toBeDefined();
      expect((await store.runs.list({ limit: 0 })).runs).toHaveLength(1);
    });

    it("answers INVALID_INPUT for a cursor that names no run", async () => {
      await expect(store.runs.list({ before: "run_nope" })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    });
  });

  describe("markInterruptedRunning", () => {
    it("interrupts running runs only, with the reason and a finish time", async () => {
      const running = await store.runs.create({ kind: "workflow", name: "a", status: "running" });
      const queued = await store.runs.create({ kind: "workflow", name: "b", status: "queued" });
      const done = await store.runs.create({ kind: "workflow", name: "c", status: "success" });
      clock = new Date("2026-01-01T01:00:00.000Z");
      const reason = errorInfo("RUNNER_LOST", "the server restarted and the runner never came back");

      expect(await store.runs.markInterruptedRunning(reason)).toEqual([running.id]);

      expect(await store.runs.get(running.id)).toMatchObject({
        status: "interrupted",
        error: reason,
        finished_at: "2026-01-01T01:00:00.000Z",
      });
      expect(await store.runs.get(queued.id)).toMatchObject({
        status: "queued",
        error: null,
        finished_at: null,
      });
      expect(await store.runs.get(done.id)).toMatchObject({ status: "success", error: null });
      expect(await store.runs.markInterruptedRunning(reason)).toEqual([]);
    });

    it("limits itself to the given ids", async () => {
      const a = await store.runs.create({ kind: "workflow", name: "a", status: "running" });
      const b = await store.runs.create({ kind: "workflow", name: "b", status: "running" });
      const reason = errorInfo("RUNNER_LOST", "lease expired");
      expect(await store.runs.markInterruptedRunning(reason, { ids: [b.id, "run_unknown"] })).toEqual([b.id]);
      expect(await store.runs.markInterruptedRunning(reason, { ids: [] })).toEqual([]);
      expect((await store.runs.get(a.id))?.status).toBe("running");
    });

    it("lists runs by status oldest first, for reconciliation", async () => {
      await store.runs.create({
        id: "run-new",
        kind: "workflow",
        name: "n",
        status: "running",
        created_at: minute(5),
      });
      await store.runs.create({
        id: "run-old",
        kind: "workflow",
        name: "o",
        status: "queued",
        created_at: minute(1),
      });
      await store.runs.create({
        id: "run-ok",
        kind: "workflow",
        name: "k",
        status: "success",
        created_at: minute(0),
      });
      const runs = await store.runs.listByStatus(["queued", "running"]);
      expect(runs.map((run) => run.id)).toEqual(["run-old", "run-new"]);
      expect(await store.runs.listByStatus([])).toEqual([]);
    });
  });

  describe("countRuns", () => {
    it("counts runs by kind and status, leaving out pairs with none", async () => {
      expect(await store.runs.count()).toEqual([]);
      await store.runs.create({ kind: "workflow", name: "a" });
      await store.runs.create({ kind: "workflow", name: "b" });
      const done = await store.runs.create({ kind: "workflow", name: "c" });
      await store.runs.update(done.id, { status: "success" });
      await store.runs.create({ kind: "bot", name: "d", status: "running" });
      expect(await store.runs.count()).toEqual([
        { kind: "bot", status: "running", count: 1 },
        { kind: "workflow", status: "queued", count: 2 },
        { kind: "workflow", status: "success", count: 1 },
      ]);
    });
  });
});
