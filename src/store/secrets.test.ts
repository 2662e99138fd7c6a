import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { Store } from "./types.js";

const secretKey = "secrets-test-key-0123456789abcdefghij";

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

  describe("secrets", () => {
    it("stores a secret, then replaces its value and keeps when it was created", async () => {
      const first = await store.secrets.set({
        tenant_id: "acme",
        name: "DEPLOY_KEY",
        value: "v1-value",
        updated_by: "tok_a",
      });
      expect(first).toEqual({
        created: true,
        secret: {
          name: "DEPLOY_KEY",
          tenant_id: "acme",
          created_at: "2026-01-01T00:00:00.000Z",
          updated_at: "2026-01-01T00:00:00.000Z",
          updated_by: "tok_a",
        },
      });
      clock = new Date("2026-01-02T00:00:00.000Z");
      const second = await store.secrets.set({
        tenant_id: "acme",
        name: "DEPLOY_KEY",
        value: "v2-value",
        updated_by: "tok_b",
      });
      expect(second).toEqual({
        created: false,
        secret: { ...first.secret, updated_at: "2026-01-02T00:00:00.000Z", updated_by: "tok_b" },
      });
      expect(await store.secrets.values("acme", ["DEPLOY_KEY"])).toEqual({ DEPLOY_KEY: "v2-value" });
    });

    it("lists names without values, sorted, per tenant; null is the no-tenant set", async () => {
      await store.secrets.set({ tenant_id: "acme", name: "B_TOKEN", value: "acme-b-value" });
      await store.secrets.set({ tenant_id: "acme", name: "A_TOKEN", value: "acme-a-value" });
      await store.secrets.set({ tenant_id: "other", name: "A_TOKEN", value: "other-a-value" });
      await store.secrets.set({ tenant_id: null, name: "C_TOKEN", value: "none-c-value" });
      const acme = await store.secrets.list("acme");
      expect(acme.map((s) => s.name)).toEqual(["A_TOKEN", "B_TOKEN"]);
      expect(JSON.stringify(acme)).not.toContain("value");
      expect((await store.secrets.list("other")).map((s) => [s.name, s.tenant_id])).toEqual([
        ["A_TOKEN", "other"],
      ]);
      expect((await store.secrets.list(null)).map((s) => [s.name, s.tenant_id])).toEqual([["C_TOKEN", null]]);
      expect(await store.secrets.list("nobody")).toEqual([]);
    });

    it("gives the values of the names a tenant has stored, and never another tenant's", async () => {
      await store.secrets.set({ tenant_id: "acme", name: "GIT_TOKEN", value: "acme-git-value" });
      await store.secrets.set({ tenant_id: "other", name: "DEPLOY_KEY", value: "other-deploy-value" });
      await store.secrets.set({ tenant_id: null, name: "DEPLOY_KEY", value: "none-deploy-value" });
      expect(await store.secrets.values("acme", ["GIT_TOKEN", "DEPLOY_KEY", "GIT_TOKEN"])).toEqual({
        GIT_TOKEN: "acme-git-value",
      });
      expect(await store.secrets.values(null, ["GIT_TOKEN", "DEPLOY_KEY"])).toEqual({
        DEPLOY_KEY: "none-deploy-value",
      });
      expect(await store.secrets.values("acme", [])).toEqual({});
    });

    it("removes a secret of one tenant only; false when there is none", async () => {
      await store.secrets.set({ tenant_id: "acme", name: "GIT_TOKEN", value: "acme-git-value" });
      await store.secrets.set({ tenant_id: "other", name: "GIT_TOKEN", value: "other-git-value" });
      expect(await store.secrets.remove("other", "GIT_TOKEN")).toBe(true);
      expect(await store.secrets.remove("other", "GIT_TOKEN")).toBe(false);
      expect(await store.secrets.remove(null, "GIT_TOKEN")).toBe(false);
      expect(await store.secrets.values("acme", ["GIT_TOKEN"])).toEqual({ GIT_TOKEN: "acme-git-value" });
      expect(await store.secrets.values("other", ["GIT_TOKEN"])).toEqual({});
    });

    it("keeps values sealed: neither the value nor the old value is in the stored bytes", async () => {
      await store.secrets.set({ tenant_id: "acme", name: "DEPLOY_KEY", value: "first-plain-value-0123" });
      await store.secrets.set({ tenant_id: "acme", name: "DEPLOY_KEY", value: "second-plain-value-4567" });
      await store.close();
      const bytes = await opened.storedBytes();
      expect(bytes.includes("DEPLOY_KEY")).toBe(true);
      expect(bytes.includes("plain-value")).toBe(false);
      const again = await opened.reopen({ secretKey });
      try {
        expect(await again.secrets.values("acme", ["DEPLOY_KEY"])).toEqual({
          DEPLOY_KEY: "second-plain-value-4567",
        });
      } finally {
        await again.close();
      }
    });

    it("refuses to open with another key when only secrets are sealed", async () => {
      await store.secrets.set({ tenant_id: null, name: "DEPLOY_KEY", value: "sealed-with-the-first-key" });
      await store.close();
      await expect(
        opened.reopen({ secretKey: "another-key-0123456789abcdefghijklmn" }),
      ).rejects.toMatchObject({
        code: "SECRET_KEY_MISMATCH",
      });
    });
  });
});
