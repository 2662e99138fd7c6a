import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { NewBot } from "./bots.js";
import type { Store } from "./types.js";

const secretKey = "bots-test-key-0123456789abcdefghijklmn";
const specMarker = "spec-marker-never-in-clear-7f3a";
const logsMarker = "logs-marker-never-in-clear-91bd";

const bot = (over: Partial<NewBot> = {}): NewBot => ({
  tenant_id: "acme",
  owner: "user_1",
  name: "echo",
  mode: "simple",
  spec: { runtime: "node", env: { TOKEN: specMarker } },
  expires_at: "2026-01-02T00:00:00.000Z",
  ...over,
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

  describe("bots", () => {
    it("creates a bot building, with defaults, and gives it back by id and by name", async () => {
      const created = await store.bots.create(bot({ image: "node:20" }));
      expect(created).toEqual({
        id: expect.stringMatching(/^bot_/),
        tenant_id: "acme",
        owner: "user_1",
        name: "echo",
        mode: "simple",
        spec: { runtime: "node", env: { TOKEN: specMarker } },
        state: "building",
        runner_id: null,
        container_id: null,
        image: "node:20",
        restarts: 0,
        restart_policy: "no",
        exit_code: null,
        oom_killed: false,
        last_logs: null,
        error: null,
        created_at: "2026-01-01T00:00:00.000Z",
        updated_at: "2026-01-01T00:00:00.000Z",
        started_at: null,
        finished_at: null,
        expires_at: "2026-01-02T00:00:00.000Z",
        run_id: null,
        memory_bytes: null,
        cpu_percent: null,
        stats_at: null,
        version: 1,
        health: null,
      });
      expect(await store.bots.get(created.id)).toEqual(created);
      expect(await store.bots.find("acme", "user_1", "echo")).toEqual(created);
      expect(await store.bots.find(null, "user_1", "echo")).toBeUndefined();
      expect(await store.bots.find("acme", "user_2", "echo")).toBeUndefined();
      expect(await store.bots.get("bot_missing")).toBeUndefined();
    });

    it("lists bots oldest first by tenant, owner and state", async () => {
      const a = await store.bots.create(bot({ name: "a" }));
      clock = new Date("2026-01-01T00:00:01.000Z");
      const b = await store.bots.create(bot({ name: "b", owner: "user_2" }));
      clock = new Date("2026-01-01T00:00:02.000Z");
      const c = await store.bots.create(bot({ name: "c", tenant_id: null }));
      await store.bots.update(b.id, { state: "running" });
      const ids = (list: { id: string }[]) => list.map((x) => x.id);
      expect(ids(await store.bots.list())).toEqual([a.id, b.id, c.id]);
      expect(ids(await store.bots.list({ tenantId: "acme" }))).toEqual([a.id, b.id]);
      expect(ids(await store.bots.list({ tenantId: null }))).toEqual([c.id]);
      expect(ids(await store.bots.list({ owner: "user_1" }))).toEqual([a.id, c.id]);
      expect(ids(await store.bots.list({ tenantId: "acme", states: ["running"] }))).toEqual([b.id]);
      expect(await store.bots.list({ states: [] })).toEqual([]);
    });

    it("refuses a live bot's name to the same owner, and takes it again once the bot is removed", async () => {
      const first = await store.bots.create(bot());
      await expect(store.bots.create(bot())).rejects.toMatchObject({
        code: "CONFLICT",
        hint: expect.stringContaining("remove"),
      });
      // Outside any tenant is one tenant key too: null does not escape the uniqueness.
      await store.bots.create(bot({ tenant_id: null }));
      await expect(store.bots.create(bot({ tenant_id: null }))).rejects.toMatchObject({ code: "CONFLICT" });
      // Another owner or another tenant may use the name.
      await store.bots.create(bot({ owner: "user_2" }));
      await store.bots.create(bot({ tenant_id: "other" }));

      await store.bots.update(first.id, { state: "removed" });
      expect(await store.bots.find("acme", "user_1", "echo")).toBeUndefined();
      const again = await store.bots.create(bot());
      expect(again.id).not.toBe(first.id);
      expect(await store.bots.find("acme", "user_1", "echo")).toEqual(again);
      // The removed row stays, and cannot come back to life while the name is taken.
      expect((await store.bots.get(first.id))?.state).toBe("removed");
      await expect(store.bots.update(first.id, { state: "stopped" })).rejects.toMatchObject({
        code: "CONFLICT",
      });
    });

    it("updates only while the state is one of ifState, and stamps updated_at", async () => {
      const created = await store.bots.create(bot());
      clock = new Date("2026-01-01T00:01:00.000Z");
      expect(
        await store.bots.update(created.id, { state: "running" }, { ifState: ["pulling"] }),
      ).toBeUndefined();
      expect(await store.bots.update(created.id, { state: "running" }, { ifState: [] })).toBeUndefined();
      expect((await store.bots.get(created.id))?.state).toBe("building");
      const running = await store.bots.update(
        created.id,
        {
          state: "running",
          runner_id: "runner-1",
          container_id: "c0ffee",
          started_at: "2026-01-01T00:01:00Z",
        },
        { ifState: ["building", "pulling"] },
      );
      expect(running).toMatchObject({
        state: "running",
        runner_id: "runner-1",
        container_id: "c0ffee",
        started_at: "2026-01-01T00:01:00.000Z",
        updated_at: "2026-01-01T00:01:00.000Z",
      });
      const crashed = await store.bots.update(
        created.id,
        {
          state: "crashed",
          exit_code: 137,
          oom_killed: true,
          restarts: 2,
          last_logs: `out of memory ${logsMarker}\n`,
          error: { code: "BOT_CRASHED", message: "killed: out of memory" },
          finished_at: "2026-01-01T00:02:00.000Z",
        },
        { ifState: ["running"] },
      );
      expect(crashed).toMatchObject({
        state: "crashed",
        exit_code: 137,
        oom_killed: true,
        restarts: 2,
        last_logs: `out of memory ${logsMarker}\n`,
        error: { code: "BOT_CRASHED", message: "killed: out of memory" },
      });
      expect(await store.bots.get(created.id)).toEqual(crashed);
      expect(await store.bots.update("bot_missing", { state: "stopped" })).toBeUndefined();
    });

    it("counts an owner's bots being built, pulled or running, per tenant", async () => {
      const states = ["building", "pulling", "running", "stopped", "crashed", "timeout", "removed"] as const;
      for (const state of states) await store.bots.create(bot({ name: state, state }));
      await store.bots.create(bot({ name: "other-owner", owner: "user_2" }));
      await store.bots.create(bot({ name: "no-tenant", tenant_id: null }));
      expect(await store.bots.countLive("acme", "user_1")).toBe(3);
      expect(await store.bots.countLive("acme", "user_2")).toBe(1);
      expect(await store.bots.countLive(null, "user_1")).toBe(1);
      expect(await store.bots.countLive("acme", "nobody")).toBe(0);
    });

    it("createBot with a quota lets exactly the cap through when starts race, and refuses the rest", async () => {
      const quota = { maxLive: 3, setting: "quotas.default_max_bots_per_user" };
      const results = await Promise.allSettled(
        ["a", "b", "c", "d", "e"].map((name) => store.bots.create(bot({ name }), quota)),
      );
      const refused = results.filter((r) => r.status === "rejected");
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
      expect(refused).toHaveLength(2);
      for (const r of refused) {
        expect((r as PromiseRejectedResult).reason).toMatchObject({
          code: "QUOTA_EXCEEDED",
          message: expect.stringContaining("Maximum 3 bots"),
        });
      }
      expect(await store.bots.countLive("acme", "user_1")).toBe(3);
      // Another owner has a quota of their own; a stopped bot frees a slot.
      await store.bots.create(bot({ name: "x", owner: "user_2" }), quota);
      const [first] = await store.bots.list({ owner: "user_1" });
      await store.bots.update(first!.id, { state: "stopped" });
      await store.bots.create(bot({ name: "f" }), quota);
    });

    it("finds the running bots whose lifetime has ended", async () => {
      const due = await store.bots.create(
        bot({ name: "due", state: "running", expires_at: "2026-01-01T01:00:00Z" }),
      );
      const later = await store.bots.create(
        bot({ name: "later", state: "running", expires_at: "2026-01-01T03:00:00Z" }),
      );
      await store.bots.create(bot({ name: "stopped", state: "stopped", expires_at: "2026-01-01T00:30:00Z" }));
      expect(await store.bots.expired()).toEqual([]);
      clock = new Date("2026-01-01T01:00:00.000Z");
      expect((await store.bots.expired()).map((b) => b.id)).toEqual([due.id]);
      expect((await store.bots.expired("2026-01-01T05:00:00Z")).map((b) => b.id)).toEqual([due.id, later.id]);
    });

    it("keeps the spec and the last logs sealed at rest", async () => {
      const created = await store.bots.create(bot());
      await store.bots.update(created.id, { last_logs: `bye ${logsMarker}` });
      await store.close();
      const bytes = await opened.storedBytes();
      expect(bytes.includes(created.id)).toBe(true);
      expect(bytes.includes(specMarker)).toBe(false);
      expect(bytes.includes(logsMarker)).toBe(false);
      const again = await opened.reopen({ secretKey });
      try {
        const read = await again.bots.get(created.id);
        expect(read?.spec).toEqual({ runtime: "node", env: { TOKEN: specMarker } });
        expect(read?.last_logs).toBe(`bye ${logsMarker}`);
      } finally {
        await again.close();
      }
    });

    it("refuses a key that cannot open a stored bot's spec", async () => {
      await store.bots.create(bot());
      await store.close();
      await expect(
        opened.reopen({ secretKey: "another-key-0123456789abcdefghijklmnop" }),
      ).rejects.toMatchObject({
        code: "SECRET_KEY_MISMATCH",
      });
    });
  });
});
