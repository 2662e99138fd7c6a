import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { Store } from "./types.js";

let store: Store;
let clock: Date;
const secretKey = "users-test-secret-key-0123456789abcdef";

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;

  beforeEach(async () => {
    clock = new Date("2026-01-01T00:00:00.000Z");
    opened = await backend.open({ now: () => clock, secretKey });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  describe("users", () => {
    it("stores a user without ever answering the hash, except to login's lookup", async () => {
      const user = await store.users.create({
        username: "ana",
        role: "member",
        tenant_id: "acme",
        password_hash: "$argon2id$fake",
      });
      expect(user).toEqual({
        id: expect.stringMatching(/^usr_/),
        username: "ana",
        role: "member",
        tenant_id: "acme",
        created_at: "2026-01-01T00:00:00.000Z",
        password_changed_at: "2026-01-01T00:00:00.000Z",
        sessions_valid_after: "2026-01-01T00:00:00.000Z",
      });
      expect(await store.users.get(user.id)).toEqual(user);
      expect(JSON.stringify(await store.users.list())).not.toContain("argon2id");
      expect(await store.users.findByName("ana")).toEqual({ ...user, password_hash: "$argon2id$fake" });
      expect(await store.users.findByName("ANA")).toBeUndefined();
      await expect(
        store.users.create({ username: "ana", role: "admin", password_hash: "x" }),
      ).rejects.toMatchObject({ code: "USERNAME_TAKEN", message: "the username ana is taken" });
    });

    it("lists users by tenant, platform admins under null", async () => {
      await store.users.create({ username: "root", role: "admin", password_hash: "x" });
      await store.users.create({ username: "bo", role: "member", tenant_id: "beta", password_hash: "x" });
      await store.users.create({ username: "ana", role: "member", tenant_id: "acme", password_hash: "x" });
      expect((await store.users.list()).map((u) => u.username)).toEqual(["ana", "bo", "root"]);
      expect((await store.users.list({ tenantId: "acme" })).map((u) => u.username)).toEqual(["ana"]);
      expect((await store.users.list({ tenantId: null })).map((u) => u.username)).toEqual(["root"]);
    });

    it("a new password moves sessions_valid_after forward", async () => {
      const user = await store.users.create({ username: "ana", role: "admin", password_hash: "old" });
      clock = new Date("2026-01-02T00:00:00.000Z");
      const changed = await store.users.setPassword(user.id, "new");
      expect(changed).toMatchObject({
        password_changed_at: "2026-01-02T00:00:00.000Z",
        sessions_valid_after: "2026-01-02T00:00:00.000Z",
      });
      expect((await store.users.findByName("ana"))?.password_hash).toBe("new");
      expect(await store.users.setPassword("usr_missing", "x")).toBeUndefined();
    });

    it("removing a user deletes their personal tokens and revoked sessions", async () => {
      const user = await store.users.create({
        username: "ana",
        role: "member",
        tenant_id: "a",
        password_hash: "x",
      });
      const personal = await store.tokens.create({
        kind: "user",
        name: "laptop",
        user_id: user.id,
        tenant_id: "a",
      });
      const other = await store.tokens.create({ kind: "user", name: "ci" });
      await store.sessions.revoke("ses_1", user.id, "2026-01-01T12:00:00.000Z");
      expect(await store.tokens.list({ userId: user.id })).toHaveLength(1);
      expect(await store.users.remove(user.id)).toBe(true);
      expect(await store.users.remove(user.id)).toBe(false);
      expect(await store.tokens.find(personal.secret)).toBeUndefined();
      expect(await store.tokens.find(other.secret)).toBeDefined();
      expect(await store.sessions.isRevoked("ses_1")).toBe(false);
    });

    it("keeps a logged-out session until it would have expired, then prunes it", async () => {
      const user = await store.users.create({ username: "ana", role: "admin", password_hash: "x" });
      await store.sessions.revoke("ses_1", user.id, "2026-01-01T12:00:00.000Z");
      await store.sessions.revoke("ses_1", user.id, "2026-01-01T12:00:00.000Z");
      expect(await store.sessions.isRevoked("ses_1")).toBe(true);
      expect(await store.sessions.isRevoked("ses_2")).toBe(false);
      clock = new Date("2026-01-01T13:00:00.000Z");
      await store.sessions.revoke("ses_2", user.id, "2026-01-02T00:00:00.000Z");
      expect(await store.sessions.isRevoked("ses_1")).toBe(false);
      expect(await store.sessions.isRevoked("ses_2")).toBe(true);
    });
  });

  describe("tokens that expire", () => {
    it("are not found once expired, and are still listed", async () => {
      const { record, secret } = await store.tokens.create({
        kind: "user",
        name: "short",
        expires_at: "2026-01-01T01:00:00.000Z",
      });
      expect(await store.tokens.find(secret)).toMatchObject({ id: record.id });
      clock = new Date("2026-01-01T01:00:00.000Z");
      expect(await store.tokens.find(secret)).toBeUndefined();
      expect(await store.tokens.get(record.id)).toMatchObject({ expires_at: "2026-01-01T01:00:00.000Z" });
    });
  });

  describe("server keys", () => {
    it("are made once, sealed at rest, and the same for every store on the database", async () => {
      const key = await store.serverKeys.get("session-hs256");
      expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(await store.serverKeys.get("session-hs256")).toBe(key);
      expect(await store.serverKeys.get("other")).not.toBe(key);
      const second = await opened.reopen({ now: () => clock, secretKey });
      try {
        expect(await second.serverKeys.get("session-hs256")).toBe(key);
      } finally {
        await second.close();
      }
      expect((await opened.storedBytes()).toString("latin1")).not.toContain(key);
    });

    it("give one install id, made once, the same for every store on the database and across restarts", async () => {
      const id = await store.serverKeys.installId();
      expect(id).toMatch(/^[0-9a-f]{16}$/);
      expect(await store.serverKeys.installId()).toBe(id);
      const second = await opened.reopen({ now: () => clock, secretKey });
      try {
        expect(await second.serverKeys.installId()).toBe(id);
      } finally {
        await second.close();
      }
      // It shows nothing of the value it is made from.
      expect(await store.serverKeys.get("install")).not.toContain(id);
    });

    it("cannot be read with another secret key: the store refuses to open with it", async () => {
      await store.serverKeys.get("session-hs256");
      await expect(
        opened.reopen({ now: () => clock, secretKey: "another-key-0123456789abcdef0123456789" }),
      ).rejects.toMatchObject({ code: "SECRET_KEY_MISMATCH" });
    });
  });
});
