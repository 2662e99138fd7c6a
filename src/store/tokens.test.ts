import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
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

  describe("tokens", () => {
    it("creates a token with a fresh ryt_ secret and finds it by that secret", async () => {
      const { record, secret } = await store.tokens.create({ kind: "user", name: "ci", tenant_id: "acme" });
      expect(secret).toMatch(/^ryt_[A-Za-z0-9_-]{43}$/);
      expect(record).toEqual({
        id: expect.stringMatching(/^tok_/),
        kind: "user",
        name: "ci",
        group: null,
        tenant_id: "acme",
        created_at: "2026-01-01T00:00:00.000Z",
        last_used_at: null,
        user_id: null,
        expires_at: null,
      });
      expect(await store.tokens.find(secret)).toEqual({
        ...record,
        last_used_at: "2026-01-01T00:00:00.000Z",
      });
    });

    it("finds nothing for a wrong, truncated or empty secret", async () => {
      const { secret } = await store.tokens.create({ kind: "admin", name: "admin" });
      expect(await store.tokens.find(`${secret}x`)).toBeUndefined();
      expect(await store.tokens.find(secret.slice(0, -1))).toBeUndefined();
      expect(await store.tokens.find("")).toBeUndefined();
    });

    it("keeps only a SHA-256 hash: the secret's bytes are nowhere in the database files", async () => {
      const { secret } = await store.tokens.create({
        kind: "admin",
        name: "admin",
        secret: "ryt_given-admin-secret-0123456789",
      });
      const hash = createHash("sha256").update(secret).digest("hex");

      const whileOpen = await opened.storedBytes();
      expect(whileOpen.includes(hash)).toBe(true);
      expect(whileOpen.includes(secret)).toBe(false);
      expect(whileOpen.includes("given-admin-secret")).toBe(false);

      await store.close();
      const afterClose = await opened.storedBytes();
      expect(afterClose.includes(hash)).toBe(true);
      expect(afterClose.includes("given-admin-secret")).toBe(false);
    });

    it("takes a given secret (RUNYARD_ADMIN_TOKEN), once", async () => {
      await store.tokens.create({ kind: "admin", name: "admin", secret: "s3cret-from-env" });
      expect(await store.tokens.find("s3cret-from-env")).toMatchObject({ kind: "admin" });
      await expect(
        store.tokens.create({ kind: "user", name: "copy", secret: "s3cret-from-env" }),
      ).rejects.toMatchObject({
        code: "CONFLICT",
      });
      await expect(store.tokens.create({ kind: "user", name: "empty", secret: "" })).rejects.toMatchObject({
        code: "INVALID_INPUT",
      });
    });

    it("records use at most once a minute", async () => {
      const { record, secret } = await store.tokens.create({ kind: "user", name: "ci" });
      await store.tokens.find(secret);
      clock = new Date("2026-01-01T00:00:59.000Z");
      expect((await store.tokens.find(secret))?.last_used_at).toBe("2026-01-01T00:00:00.000Z");
      clock = new Date("2026-01-01T00:01:00.000Z");
      expect((await store.tokens.find(secret))?.last_used_at).toBe("2026-01-01T00:01:00.000Z");
      expect((await store.tokens.list()).find((token) => token.id === record.id)?.last_used_at).toBe(
        "2026-01-01T00:01:00.000Z",
      );
    });

    it("lists and counts tokens by kind, and a revoked token no longer authenticates", async () => {
      expect(await store.tokens.count()).toBe(0);
      const admin = await store.tokens.create({ kind: "admin", name: "admin" });
      const runner = await store.tokens.create({ kind: "runner", name: "gpu box", group: "gpu" });
      expect(await store.tokens.count()).toBe(2);
      expect(await store.tokens.count("admin")).toBe(1);
      expect(await store.tokens.count("user")).toBe(0);
      expect((await store.tokens.list("runner")).map((token) => [token.name, token.group])).toEqual([
        ["gpu box", "gpu"],
      ]);
      expect(JSON.stringify(await store.tokens.list())).not.toContain(admin.secret);

      expect(await store.tokens.revoke(runner.record.id)).toBe(true);
      expect(await store.tokens.revoke(runner.record.id)).toBe(false);
      expect(await store.tokens.find(runner.secret)).toBeUndefined();
      expect(await store.tokens.count()).toBe(1);
    });

    it("keeps whose a revoked token was, until its user is removed", async () => {
      const ann = await store.users.create({
        username: "ann",
        role: "member",
        tenant_id: "acme",
        password_hash: "x",
      });
      const personal = await store.tokens.create({
        kind: "user",
        name: "laptop",
        tenant_id: "acme",
        user_id: ann.id,
      });
      const admin = await store.tokens.create({ kind: "admin", name: "ci" });
      expect(await store.tokens.owner(personal.record.id)).toEqual({ user_id: ann.id });
      expect(await store.tokens.revoke(personal.record.id)).toBe(true);
      expect(await store.tokens.revoke(admin.record.id)).toBe(true);
      expect(await store.tokens.get(personal.record.id)).toBeUndefined();
      expect(await store.tokens.owner(personal.record.id)).toEqual({ user_id: ann.id });
      expect(await store.tokens.owner(admin.record.id)).toEqual({ user_id: null });
      expect(await store.tokens.owner("tok_never")).toBeUndefined();
      expect(await store.users.remove(ann.id)).toBe(true);
      expect(await store.tokens.owner(personal.record.id)).toBeUndefined();
    });
  });
});
