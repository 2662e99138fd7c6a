import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { Store } from "./types.js";

const secretKey = "hooks-test-key-0123456789abcdefghijkl";
const hookSecret = "the-hook-secret-4f1d2c3b";

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;
  let store: Store;

  beforeEach(async () => {
    opened = await backend.open({ now: () => new Date("2026-01-01T00:00:00.000Z"), secretKey });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  /** The id the tests give a hook: delivery URLs name it. */
  const idOf = (name: string, tenant: string | null = "acme") => `hook_${tenant ?? "none"}_${name}`;
  const newHook = (name: string, tenant: string | null = "acme") => ({
    id: idOf(name, tenant),
    name,
    tenant_id: tenant,
    workflow: "deploy",
    vars: { BRANCH: "$.ref" },
    secret: hookSecret,
    created_by: "tok_a",
  });

  describe("hooks", () => {
    it("stores a hook with its secret sealed, and shows it without the secret", async () => {
      const hook = await store.hooks.create(newHook("acme-deploy"));
      expect(hook).toEqual({
        id: "hook_acme_acme-deploy",
        name: "acme-deploy",
        tenant_id: "acme",
        workflow: "deploy",
        vars: { BRANCH: "$.ref" },
        created_at: "2026-01-01T00:00:00.000Z",
        created_by: "tok_a",
      });
      expect(await store.hooks.get("acme", "acme-deploy")).toEqual(hook);
      expect(await store.hooks.byId("hook_acme_acme-deploy")).toEqual(hook);
      expect(await store.hooks.secret("hook_acme_acme-deploy")).toBe(hookSecret);
      expect((await opened.storedBytes()).includes(Buffer.from(hookSecret))).toBe(false);
    });

    it("keeps names unique within a tenant; another tenant's name is free", async () => {
      const acme = await store.hooks.create(newHook("deploy", "acme"));
      await expect(
        store.hooks.create({ ...newHook("deploy", "acme"), id: "hook_other" }),
      ).rejects.toMatchObject({ code: "CONFLICT", message: "a hook named deploy exists already" });
      const globex = await store.hooks.create(newHook("deploy", "globex"));
      const none = await store.hooks.create(newHook("deploy", null));
      expect(await store.hooks.get("acme", "deploy")).toEqual(acme);
      expect(await store.hooks.get("globex", "deploy")).toEqual(globex);
      expect(await store.hooks.get(null, "deploy")).toEqual(none);
      expect(await store.hooks.get("initech", "deploy")).toBeUndefined();
      expect(await store.hooks.remove(globex.id)).toBe(true);
      expect(await store.hooks.get("acme", "deploy")).toEqual(acme);
    });

    it("lists a tenant's hooks only, or every one", async () => {
      await store.hooks.create(newHook("b", "acme"));
      await store.hooks.create(newHook("a", "globex"));
      await store.hooks.create(newHook("c", null));
      expect((await store.hooks.list("acme")).map((hook) => hook.name)).toEqual(["b"]);
      expect((await store.hooks.list(null)).map((hook) => hook.name)).toEqual(["c"]);
      expect((await store.hooks.list(undefined)).map((hook) => hook.name)).toEqual(["a", "b", "c"]);
    });

    it("records a delivery once; the same delivery again answers the first run", async () => {
      await store.hooks.create(newHook("h"));
      const first = await store.hooks.recordDelivery({
        hook_id: idOf("h"),
        delivery_id: "d-1",
        run_id: "run_1",
      });
      expect(first).toMatchObject({ first: true, delivery: { run_id: "run_1" } });
      const again = await store.hooks.recordDelivery({
        hook_id: idOf("h"),
        delivery_id: "d-1",
        run_id: "run_2",
      });
      expect(again).toMatchObject({ first: false, delivery: { run_id: "run_1" } });
      const other = await store.hooks.recordDelivery({
        hook_id: idOf("h"),
        delivery_id: "d-2",
        run_id: "run_3",
      });
      expect(other.first).toBe(true);
    });

    it("prunes deliveries received before a time; a pruned id is new again", async () => {
      await store.hooks.create(newHook("h"));
      await store.hooks.recordDelivery({ hook_id: idOf("h"), delivery_id: "old", run_id: "run_1" });
      expect(await store.hooks.pruneDeliveries("2025-12-31T00:00:00.000Z")).toBe(0);
      expect(await store.hooks.pruneDeliveries("2026-01-02T00:00:00.000Z")).toBe(1);
      const again = await store.hooks.recordDelivery({
        hook_id: idOf("h"),
        delivery_id: "old",
        run_id: "run_2",
      });
      expect(again.first).toBe(true);
    });

    it("records one of many identical deliveries arriving at once", async () => {
      await store.hooks.create(newHook("h"));
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          store.hooks.recordDelivery({ hook_id: idOf("h"), delivery_id: "same", run_id: `run_${i}` }),
        ),
      );
      expect(answers.filter((answer) => answer.first)).toHaveLength(1);
      expect(new Set(answers.map((answer) => answer.delivery.run_id)).size).toBe(1);
    });

    it("forgets a delivery whose run could not start, and removes a hook with its deliveries", async () => {
      await store.hooks.create(newHook("h"));
      await store.hooks.recordDelivery({ hook_id: idOf("h"), delivery_id: "d", run_id: "run_1" });
      await store.hooks.forgetDelivery(idOf("h"), "d");
      expect(
        (await store.hooks.recordDelivery({ hook_id: idOf("h"), delivery_id: "d", run_id: "run_2" })).first,
      ).toBe(true);
      expect(await store.hooks.remove(idOf("h"))).toBe(true);
      expect(await store.hooks.get("acme", "h")).toBeUndefined();
      expect(await store.hooks.remove(idOf("h"))).toBe(false);
      await store.hooks.create(newHook("h"));
      expect(
        (await store.hooks.recordDelivery({ hook_id: idOf("h"), delivery_id: "d", run_id: "run_3" })).first,
      ).toBe(true);
    });
  });
});
