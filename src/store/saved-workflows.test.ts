import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { NewSchedule } from "./schedules.js";
import type { Store } from "./types.js";

const secretKey = "saved-workflows-test-key-0123456789abc";

const everyFiveMinutes = (armedAt: string): NewSchedule => ({
  cron: "*/5 * * * *",
  timezone: "UTC",
  overlap: "skip",
  catch_up: "latest",
  armed_at: armedAt,
  next_tick_at: "2026-01-01T00:05:00.000Z",
});

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let clock: Date;

  beforeEach(async () => {
    clock = new Date("2026-01-01T00:00:00.000Z");
    opened = await backend.open({ now: () => clock, secretKey });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  /** Saves `name` with a schedule every five minutes and records its ticks at these minutes. */
  async function scheduledWithTicks(name: string, minutes: string[]) {
    await store.savedWorkflows.save({
      promote: true,
      tenant_id: "acme",
      name,
      workflow: "# 1",
      file: "f",
      created_by: null,
      schedules: [everyFiveMinutes(clock.toISOString())],
    });
    const [schedule] = await store.schedules.list("acme");
    if (!schedule) throw new Error("no schedule stored");
    for (const minute of minutes) {
      await store.schedules.claimTick({
        schedule_id: schedule.id,
        tick_at: `2026-01-01T00:${minute}:00.000Z`,
        outcome: "missed",
        run_id: null,
        detail: null,
      });
    }
    return schedule;
  }

  describe("saved workflows", () => {
    it("gives each save of a name the next version and keeps the earlier ones as they were", async () => {
      const first = await store.savedWorkflows.save({
        promote: true,
        tenant_id: "acme",
        name: "deploy",
        workflow: "name: a\nsteps: []\n",
        file: "deploy.yaml",
        created_by: "tok_1",
      });
      clock = new Date("2026-01-02T00:00:00.000Z");
      const second = await store.savedWorkflows.save({
        promote: true,
        tenant_id: "acme",
        name: "deploy",
        workflow: "name: b\nsteps: []\n",
        file: "deploy.yaml",
        created_by: "tok_2",
      });
      expect([first.version, second.version]).toEqual([1, 2]);
      expect(await store.savedWorkflows.get("acme", "deploy")).toMatchObject({
        version: 2,
        workflow: "name: b\nsteps: []\n",
      });
      expect(await store.savedWorkflows.get("acme", "deploy", 1)).toMatchObject({
        version: 1,
        workflow: "name: a\nsteps: []\n",
        created_by: "tok_1",
      });
      expect(await store.savedWorkflows.list("acme")).toEqual([
        {
          tenant_id: "acme",
          name: "deploy",
          latest_version: 2,
          versions: 2,
          updated_at: "2026-01-02T00:00:00.000Z",
          created_by: "tok_2",
          live_version: 2,
          pending_versions: [],
        },
      ]);
      expect((await store.savedWorkflows.versions("acme", "deploy")).map((v) => v.version)).toEqual([2, 1]);
    });

    it("keeps a version saved unpromoted pending, its schedules unarmed, until it is promoted", async () => {
      const save = (text: string, promote: boolean, by: string) =>
        store.savedWorkflows.save({
          promote,
          tenant_id: "acme",
          name: "rel",
          workflow: text,
          file: "rel.yaml",
          created_by: by,
          schedules: [everyFiveMinutes(clock.toISOString())],
        });
      await save("# 1", true, "tok_ada");
      await save("# 2", false, "tok_amy");
      expect(await store.savedWorkflows.live("acme", "rel")).toMatchObject({
        version: 1,
        promoted_by: "tok_ada",
      });
      expect(await store.savedWorkflows.list("acme")).toMatchObject([
        { live_version: 1, pending_versions: [2] },
      ]);
      expect((await store.schedules.list("acme")).map((s) => [s.workflow_version, s.owner])).toEqual([
        [1, "tok_ada"],
      ]);
      const promote = (version: number) =>
        store.savedWorkflows.promote({
          tenant_id: "acme",
          name: "rel",
          version,
          promoted_by: "tok_ada",
          schedules: [everyFiveMinutes(clock.toISOString())],
        });
      expect(await promote(2)).toBe(true);
      expect(await store.savedWorkflows.live("acme", "rel")).toMatchObject({
        version: 2,
        created_by: "tok_amy",
      });
      expect((await store.schedules.list("acme")).map((s) => [s.workflow_version, s.owner])).toEqual([
        [2, "tok_ada"],
      ]);
      // Promoted already, or older than the live version: nothing changes.
      expect(await promote(2)).toBe(false);
      expect(await promote(1)).toBe(false);
      expect(await promote(9)).toBe(false);
    });

    it("keeps each tenant's names apart, and those outside any tenant apart from both", async () => {
      for (const tenant of ["acme", "globex", null]) {
        await store.savedWorkflows.save({
          promote: true,
          tenant_id: tenant,
          name: "deploy",
          workflow: `# ${tenant}`,
          file: "f",
          created_by: null,
        });
      }
      expect(await store.savedWorkflows.get("acme", "deploy")).toMatchObject({
        version: 1,
        workflow: "# acme",
      });
      expect(await store.savedWorkflows.get(null, "deploy")).toMatchObject({
        tenant_id: null,
        workflow: "# null",
      });
      expect(await store.savedWorkflows.get("initech", "deploy")).toBeUndefined();
      expect((await store.savedWorkflows.list(undefined)).map((w) => w.tenant_id)).toEqual([
        null,
        "acme",
        "globex",
      ]);
    });

    it("gives two saves of one name at once two versions", async () => {
      const saves = await Promise.all(
        [1, 2, 3].map((n) =>
          store.savedWorkflows.save({
            promote: true,
            tenant_id: "acme",
            name: "deploy",
            workflow: `# ${n}`,
            file: "f",
            created_by: null,
          }),
        ),
      );
      expect(saves.map((s) => s.version).sort()).toEqual([1, 2, 3]);
    });

    it("stores the workflow text sealed, never as it was given", async () => {
      await store.savedWorkflows.save({
        promote: true,
        tenant_id: "acme",
        name: "deploy",
        workflow: "token: plain-direct-host-token-42",
        file: "f",
        created_by: null,
      });
      expect((await opened.storedBytes()).includes("plain-direct-host-token-42")).toBe(false);
    });

    it("removes every version, the schedules and their ticks of a name", async () => {
      const schedule = await scheduledWithTicks("deploy", ["05"]);
      expect(await store.savedWorkflows.remove("acme", "deploy")).toBe(true);
      expect(await store.savedWorkflows.get("acme", "deploy")).toBeUndefined();
      expect(await store.schedules.list(undefined)).toEqual([]);
      expect(await store.schedules.ticks(schedule.id)).toEqual([]);
      expect(await store.savedWorkflows.remove("acme", "deploy")).toBe(false);
    });
  });

  describe("schedules", () => {
    it("prunes old ticks but each schedule's newest", async () => {
      const schedule = await scheduledWithTicks("often", ["05", "10", "15"]);
      expect(await store.schedules.pruneTicks("2026-01-01T00:00:00.000Z")).toBe(0);
      expect(await store.schedules.pruneTicks("2026-02-01T00:00:00.000Z")).toBe(2);
      expect((await store.schedules.ticks(schedule.id)).map((tick) => tick.tick_at)).toEqual([
        "2026-01-01T00:15:00.000Z",
      ]);
    });

    it("keeps a schedule's id and place when a new version leaves its cron as it was", async () => {
      const save = (schedules: NewSchedule[]) =>
        store.savedWorkflows.save({
          promote: true,
          tenant_id: "acme",
          name: "nightly",
          workflow: "#",
          file: "f",
          created_by: null,
          schedules,
        });
      await save([everyFiveMinutes(clock.toISOString())]);
      const [before] = await store.schedules.list("acme");
      if (!before) throw new Error("no schedule stored");
      await store.schedules.advance(before.id, "2026-01-01T00:05:00.000Z", "2026-01-01T00:10:00.000Z");
      clock = new Date("2026-01-01T00:07:00.000Z");
      await save([{ ...everyFiveMinutes(clock.toISOString()), overlap: "queue" }]);
      const [kept] = await store.schedules.list("acme");
      expect(kept).toMatchObject({
        id: before.id,
        workflow_version: 2,
        overlap: "queue",
        armed_at: "2026-01-01T00:00:00.000Z",
        last_tick_at: "2026-01-01T00:05:00.000Z",
        next_tick_at: "2026-01-01T00:10:00.000Z",
      });
      await save([
        {
          ...everyFiveMinutes(clock.toISOString()),
          cron: "0 * * * *",
          next_tick_at: "2026-01-01T01:00:00.000Z",
        },
        everyFiveMinutes(clock.toISOString()),
      ]);
      const changed = await store.schedules.list("acme");
      expect(changed.map((s) => [s.position, s.cron, s.armed_at, s.last_tick_at])).toEqual([
        [0, "0 * * * *", "2026-01-01T00:07:00.000Z", null],
        [1, "*/5 * * * *", "2026-01-01T00:07:00.000Z", null],
      ]);
      await save([]);
      expect(await store.schedules.list("acme")).toEqual([]);
    });

    it("counts a tenant's ticks that started a run since a time, and no other tenant's", async () => {
      const schedule = await scheduledWithTicks("counted", ["05"]);
      for (const [minute, outcome] of [
        ["10", "started"],
        ["15", "started"],
        ["20", "skipped"],
      ] as const) {
        await store.schedules.claimTick({
          schedule_id: schedule.id,
          tick_at: `2026-01-01T00:${minute}:00.000Z`,
          outcome,
          run_id: null,
          detail: null,
        });
      }
      expect(await store.schedules.startedSince("acme", new Date("2026-01-01T00:00:00.000Z"))).toBe(2);
      expect(await store.schedules.startedSince("acme", new Date("2026-01-01T00:12:00.000Z"))).toBe(1);
      expect(await store.schedules.startedSince("globex", new Date("2026-01-01T00:00:00.000Z"))).toBe(0);
    });

    it("lets exactly one of two racing inserters claim a tick", async () => {
      await store.savedWorkflows.save({
        promote: true,
        tenant_id: "acme",
        name: "nightly",
        workflow: "#",
        file: "f",
        created_by: null,
        schedules: [everyFiveMinutes(clock.toISOString())],
      });
      const [schedule] = await store.schedules.list("acme");
      if (!schedule) throw new Error("no schedule stored");
      // A second connection to the same database: another replica.
      const other = await opened.reopen({ now: () => clock, secretKey });
      try {
        for (let round = 0; round < 20; round++) {
          const tick = new Date(Date.parse("2026-01-01T00:05:00.000Z") + round * 300_000).toISOString();
          const claims = await Promise.all(
            [store, other].map((s, n) =>
              s.schedules.claimTick({
                schedule_id: schedule.id,
                tick_at: tick,
                outcome: "started",
                run_id: `run_${round}_${n}`,
                detail: null,
              }),
            ),
          );
          expect(claims.filter(Boolean)).toHaveLength(1);
        }
        const ticks = await store.schedules.ticks(schedule.id);
        expect(ticks).toHaveLength(20);
      } finally {
        await other.close();
      }
    });

    it("shows each schedule with what its last tick did, and only what is due", async () => {
      await store.savedWorkflows.save({
        promote: true,
        tenant_id: "acme",
        name: "nightly",
        workflow: "#",
        file: "f",
        created_by: null,
        schedules: [everyFiveMinutes(clock.toISOString())],
      });
      const [schedule] = await store.schedules.list("acme");
      if (!schedule) throw new Error("no schedule stored");
      expect(await store.schedules.due(new Date("2026-01-01T00:04:59.000Z"))).toEqual([]);
      expect((await store.schedules.due(new Date("2026-01-01T00:05:00.000Z"))).map((s) => s.id)).toEqual([
        schedule.id,
      ]);
      expect(await store.schedules.nextDue()).toBe("2026-01-01T00:05:00.000Z");
      await store.schedules.claimTick({
        schedule_id: schedule.id,
        tick_at: "2026-01-01T00:05:00.000Z",
        outcome: "skipped",
        run_id: "run_a",
        detail: "run_a is still running",
      });
      await store.schedules.advance(schedule.id, "2026-01-01T00:05:00.000Z", "2026-01-01T00:10:00.000Z");
      // Never back: a slower replica that handled an earlier tick does not undo the cursor.
      await store.schedules.advance(schedule.id, "2026-01-01T00:00:00.000Z", "2026-01-01T00:05:00.000Z");
      const [listed] = await store.schedules.list("acme");
      expect(listed).toMatchObject({
        last_tick_at: "2026-01-01T00:05:00.000Z",
        next_tick_at: "2026-01-01T00:10:00.000Z",
        last_tick: { outcome: "skipped", run_id: "run_a", detail: "run_a is still running", ticks: 1 },
      });
      expect(await store.schedules.list("globex")).toEqual([]);
    });

    it("finds ticks claimed for a run that was never stored, and the runs a schedule has going", async () => {
      await store.savedWorkflows.save({
        promote: true,
        tenant_id: null,
        name: "nightly",
        workflow: "#",
        file: "f",
        created_by: null,
        schedules: [everyFiveMinutes(clock.toISOString())],
      });
      const [schedule] = await store.schedules.list(null);
      if (!schedule) throw new Error("no schedule stored");
      await store.runs.create({
        id: "run_stored",
        kind: "workflow",
        name: "n",
        trigger: "schedule",
        trigger_ref: schedule.id,
      });
      await store.schedules.claimTick({
        schedule_id: schedule.id,
        tick_at: "2026-01-01T00:05:00.000Z",
        outcome: "started",
        run_id: "run_stored",
        detail: null,
      });
      await store.schedules.claimTick({
        schedule_id: schedule.id,
        tick_at: "2026-01-01T00:10:00.000Z",
        outcome: "started",
        run_id: "run_lost",
        detail: null,
      });
      clock = new Date("2026-01-01T00:11:00.000Z");
      const lost = await store.schedules.unstartedTicks(clock, new Date("2025-12-31T00:00:00.000Z"));
      expect(lost.map((t) => t.run_id)).toEqual(["run_lost"]);
      expect(await store.schedules.activeRuns(schedule.id)).toEqual(["run_stored"]);
      await store.runs.update("run_stored", { status: "success" });
      expect(await store.schedules.activeRuns(schedule.id)).toEqual([]);
    });
  });
});
