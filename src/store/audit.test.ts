import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { NewAuditEvent } from "./audit.js";
import type { Store } from "./types.js";

const actor = { kind: "user", user_id: "usr_1", token_id: null, username: "ann" };

function entry(over: Partial<NewAuditEvent> = {}): NewAuditEvent {
  return {
    actor,
    tenant_id: "acme",
    address: "10.0.0.1",
    action: "secret.set",
    target: "DEPLOY_KEY",
    outcome: "ok",
    details: { created: true },
    ...over,
  };
}

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

  const tick = () => {
    clock = new Date(clock.getTime() + 1000);
  };

  describe("audit log", () => {
    it("keeps one row per tally id, its details replaced by each write", async () => {
      const refused = entry({ action: "login", outcome: "denied", details: { count: 1 } });
      await store.audit.tally("aud_tally_1", refused);
      tick();
      await store.audit.tally("aud_tally_1", { ...refused, details: { count: 2 } });
      const { events } = await store.audit.list();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        id: "aud_tally_1",
        at: "2026-01-01T00:00:00.000Z",
        details: { count: 2 },
      });
    });

    it("prunes the entries older than a given instant only", async () => {
      await store.audit.append(entry({ target: "OLD", at: "2025-09-01T00:00:00.000Z" }));
      await store.audit.append(entry({ target: "RECENT", at: "2025-12-20T00:00:00.000Z" }));
      expect(await store.audit.prune("2025-10-01T00:00:00.000Z")).toBe(1);
      expect((await store.audit.list()).events.map((e) => e.target)).toEqual(["RECENT"]);
    });

    it("stores an entry as given and reads it back", async () => {
      const stored = await store.audit.append(entry());
      expect(stored).toMatchObject({ ...entry(), at: "2026-01-01T00:00:00.000Z" });
      expect(stored.id).toMatch(/^aud_/);
      expect((await store.audit.list()).events).toEqual([stored]);
    });

    it("lists newest first and pages with the cursor", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        ids.push((await store.audit.append(entry({ target: `S${i}` }))).id);
        tick();
      }
      const first = await store.audit.list({ limit: 2 });
      expect(first.events.map((e) => e.target)).toEqual(["S4", "S3"]);
      expect(first.next).toBe(ids[3]);
      const second = await store.audit.list({ limit: 2, ...(first.next ? { before: first.next } : {}) });
      expect(second.events.map((e) => e.target)).toEqual(["S2", "S1"]);
      const third = await store.audit.list({ limit: 2, ...(second.next ? { before: second.next } : {}) });
      expect(third.events.map((e) => e.target)).toEqual(["S0"]);
      expect(third.next).toBeUndefined();
      await expect(store.audit.list({ before: "aud_unknown" })).rejects.toMatchObject({
        code: "INVALID_INPUT",
      });
    });

    it("lists entries of the same instant in the order they were made, newest first", async () => {
      for (let i = 0; i < 20; i += 1) await store.audit.append(entry({ target: `S${i}` }));
      const { events } = await store.audit.list();
      expect(events.map((e) => e.target)).toEqual(Array.from({ length: 20 }, (_, i) => `S${19 - i}`));
    });

    it("filters by action, tenant (null: outside any) and since", async () => {
      await store.audit.append(entry({ action: "login", tenant_id: "acme" }));
      tick();
      await store.audit.append(entry({ action: "logout", tenant_id: "other" }));
      tick();
      await store.audit.append(entry({ action: "login", tenant_id: null }));
      expect((await store.audit.list({ action: "login" })).events.map((e) => e.tenant_id)).toEqual([
        null,
        "acme",
      ]);
      expect((await store.audit.list({ tenantId: "other" })).events.map((e) => e.action)).toEqual(["logout"]);
      expect((await store.audit.list({ tenantId: null })).events).toHaveLength(1);
      const since = await store.audit.list({ since: "2026-01-01T00:00:01.000Z" });
      expect(since.events.map((e) => e.action)).toEqual(["login", "logout"]);
    });
  });
});
