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
      const user = await store.createUser({
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
      expect(await store.getUser(user.id)).toEqual(user);
      expect(JSON.stringify(await store.listUsers())).not.toContain("argon2id");
      expect(await store.findUserByName("ana")).toEqual({ ...user, password_hash: "$argon2id$fake" });
      expect(await store.findUserByName("ANA")).toBeUndefined();
      await expect(
        store.createUser({ username: "ana", role: "admin", password_hash: "x" }),
      ).rejects.toMatchObject({ code: "USERNAME_TAKEN", message: "the username ana is taken" });
    });

    it("lists users by tenant, platform admins under null", async () => {
      await store.createUser({ username: "root", role: "admin", password_hash: "x" });
      await store.createUser({ username: "bo", role: "member", tenant_id: "beta", password_hash: "x" });
      await store.createUser({ username: "ana", role: "member", tenant_id: "acme", password_hash: "x" });
      expect((await store.listUsers()).map((u) => u.username)).toEqual(["ana", "bo", "root"]);
      expect((await store.listUsers({ tenantId: "acme" })).map((u) => u.username)).toEqual(["ana"]);
      expect((await store.listUsers({ tenantId: null })).map((u) => u.username)).toEqual(["root"]);
    });

    it("a new password moves sessions_valid_after forward", async () => {
      const user = await store.createUser({ username: "ana", role: "admin", password_hash: "old" });
      clock = new Date("2026-01-02T00:00:00.000Z");
      const changed = await store.setUserPassword(user.id, "new");
      expect(changed).toMatchObject({
        password_changed_at: "2026-01-02T00:00:00.000Z",
        sessions_valid_after: "2026-01-02T00:00:00.000Z",
      });
      expect((await store.findUserByName("ana"))?.password_hash).toBe("new");
      expect(await store.setUserPassword("usr_missing", "x")).toBeUndefined();
    });

    it("removing a user deletes their personal tokens and revoked sessions", async () => {
      const user = await store.createUser({
        username: "ana",
        role: "member",
        tenant_id: "a",
        password_hash: "x",
      });
      const personal = await store.createToken({
        kind: "user",
        name: "laptop",
        user_id: user.id,
        tenant_id: "a",
      });
      const other = await store.createToken({ kind: "user", name: "ci" });
      await store.revokeSession("ses_1", user.id, "2026-01-01T12:00:00.000Z");
      expect(await store.listTokens({ userId: user.id })).toHaveLength(1);
      expect(await store.removeUser(user.id)).toBe(true);
      expect(await store.removeUser(user.id)).toBe(false);
      expect(await store.findToken(personal.secret)).toBeUndefined();
      expect(await store.findToken(other.secret)).toBeDefined();
      expect(await store.sessionRevoked("ses_1")).toBe(false);
    });

    it("keeps a logged-out session until it would have expired, then prunes it", async () => {
      const user = await store.createUser({ username: "ana", role: "admin", password_hash: "x" });
      await store.revokeSession("ses_1", user.id, "2026-01-01T12:00:00.000Z");
      await store.revokeSession("ses_1", user.id, "2026-01-01T12:00:00.000Z");
      expect(await store.sessionRevoked("ses_1")).toBe(true);
      expect(await store.sessionRevoked("ses_2")).toBe(false);
      clock = new Date("2026-01-01T13:00:00.000Z");
      await store.revokeSession("ses_2", user.id, "2026-01-02T00:00:00.000Z");
      expect(await store.sessionRevoked("ses_1")).toBe(false);
      expect(await store.sessionRevoked("ses_2")).toBe(true);
    });
  });

  describe("tokens that expire", () => {
    it("are not found once expired, and are still listed", async () => {
      const { record, secret } = await store.createToken({
        kind: "user",
        name: "short",
        expires_at: "2026-01-01T01:00:00.000Z",
      });
      expect(await store.findToken(secret)).toMatchObject({ id: record.id });
      clock = new Date("2026-01-01T01:00:00.000Z");
      expect(await store.findToken(secret)).toBeUndefined();
      expect(await store.getToken(record.id)).toMatchObject({ expires_at: "2026-01-01T01:00:00.000Z" });
    });
  });

  describe("server keys", () => {
    it("are made once, sealed at rest, and the same for every store on the database", async () => {
      const key = await store.serverKey("session-hs256");
      expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(await store.serverKey("session-hs256")).toBe(key);
      expect(await store.serverKey("other")).not.toBe(key);
      const second = await opened.reopen({ now: () => clock, secretKey });
      try {
        expect(await second.serverKey("session-hs256")).toBe(key);
      } finally {
        await second.close();
      }
      expect((await opened.storedBytes()).toString("latin1")).not.toContain(key);
    });

    it("cannot be read with another secret key: the store refuses to open with it", async () => {
      await store.serverKey("session-hs256");
      await expect(
        opened.reopen({ now: () => clock, secretKey: "another-key-0123456789abcdef0123456789" }),
      ).rejects.toMatchObject({ code: "SECRET_KEY_MISMATCH" });
    });
  });
});
