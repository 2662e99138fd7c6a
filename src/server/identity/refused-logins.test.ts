import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../core/logger.js";
import type { Store } from "../../store/index.js";
import { openMemoryStore } from "../../store/sqlite.js";
import { type LoginRefusal, RefusedLogins } from "./refused-logins.js";

describe("RefusedLogins", () => {
  let store: Store;
  let now: number;
  let counted: LoginRefusal[];
  let refusals: RefusedLogins;

  beforeEach(async () => {
    store = await openMemoryStore();
    now = Date.parse("2026-01-01T10:00:05.000Z");
    counted = [];
    refusals = new RefusedLogins(
      store.audit,
      silentLogger,
      (reason) => counted.push(reason),
      () => now,
    );
  });
  afterEach(async () => {
    await refusals.close();
    await store.close();
  });

  const refuse = (username: string, address = "10.0.0.1", reason: LoginRefusal = "rate_limited") =>
    refusals.refused({ address, username, user: undefined, reason });

  it("writes the first refusal at once, and counts the rest of the minute in the same entry", async () => {
    await refuse("ana");
    expect((await store.audit.list()).events).toMatchObject([{ details: { count: 1 } }]);
    for (let i = 0; i < 99; i += 1) await refuse(i % 2 ? "ana" : "bob");
    await refusals.flush();
    const { events } = await store.audit.list();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      action: "login",
      outcome: "denied",
      address: "10.0.0.1",
      target: "ana",
      at: "2026-01-01T10:00:05.000Z",
      details: { reason: "rate_limited", count: 100, usernames: ["ana", "bob"] },
    });
    expect(counted).toHaveLength(100);
  });

  it("starts a new entry for a new minute, another address or another reason", async () => {
    await refuse("ana");
    await refuse("ana", "10.0.0.2");
    await refuse("ana", "10.0.0.1", "wrong_credentials");
    now += 60_000;
    await refuse("ana");
    await refusals.flush();
    expect((await store.audit.list()).events).toHaveLength(4);
  });

  it("lists 10 usernames and counts the others", async () => {
    for (let i = 0; i < 15; i += 1) await refuse(`user-${i}`);
    await refusals.flush();
    const [entry] = (await store.audit.list()).events;
    expect(entry?.details.usernames).toHaveLength(10);
    expect(entry?.details.more_usernames).toBe(5);
  });
});
