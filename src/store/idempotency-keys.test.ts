import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { IdempotencyRequest } from "./idempotency-keys.js";
import type { Store } from "./types.js";

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let clock: Date;

  beforeEach(async () => {
    clock = new Date("2026-03-01T10:00:00.000Z");
    opened = await backend.open({ now: () => clock });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  const later = (ms: number): void => {
    clock = new Date(clock.getTime() + ms);
  };

  const request = (overrides: Partial<IdempotencyRequest> = {}): IdempotencyRequest => ({
    owner: "user:ann",
    key: "k-1",
    request_hash: "hash-a",
    keep_ms: 24 * 3_600_000,
    claim_timeout_ms: 60_000,
    ...overrides,
  });

  describe("idempotency keys", () => {
    it("lets one claim serve a key, and answers the others with its kept answer", async () => {
      const first = await store.idempotencyKeys.claim(request());
      if (first.state !== "claimed") throw new Error(`expected a claim, got ${first.state}`);
      expect(await store.idempotencyKeys.claim(request())).toEqual({ state: "in_use" });
      expect(
        await store.idempotencyKeys.complete("user:ann", "k-1", first.claim_id, {
          status: 201,
          body: '{"run_id":"run_1"}',
        }),
      ).toBe(true);
      expect(await store.idempotencyKeys.claim(request())).toEqual({
        state: "answered",
        answer: { status: 201, body: '{"run_id":"run_1"}' },
      });
    });

    it("refuses the same key with another body, answered or not", async () => {
      await store.idempotencyKeys.claim(request());
      expect(await store.idempotencyKeys.claim(request({ request_hash: "hash-b" }))).toEqual({
        state: "reused",
      });
    });

    it("keeps keys apart per owner", async () => {
      expect((await store.idempotencyKeys.claim(request())).state).toBe("claimed");
      expect((await store.idempotencyKeys.claim(request({ owner: "token:tok_1" }))).state).toBe("claimed");
    });

    it("frees a released claim, so the key may be sent again, with any body", async () => {
      const first = await store.idempotencyKeys.claim(request());
      if (first.state !== "claimed") throw new Error("expected a claim");
      await store.idempotencyKeys.release("user:ann", "k-1", first.claim_id);
      expect((await store.idempotencyKeys.claim(request({ request_hash: "hash-b" }))).state).toBe("claimed");
    });

    it("takes over a claim left unanswered past its timeout, and the old claim can no longer answer", async () => {
      const first = await store.idempotencyKeys.claim(request());
      if (first.state !== "claimed") throw new Error("expected a claim");
      later(59_000);
      expect((await store.idempotencyKeys.claim(request())).state).toBe("in_use");
      later(2_000);
      const second = await store.idempotencyKeys.claim(request());
      expect(second.state).toBe("claimed");
      expect(
        await store.idempotencyKeys.complete("user:ann", "k-1", first.claim_id, { status: 201, body: "{}" }),
      ).toBe(false);
    });

    it("forgets a key after it expires, and prunes it", async () => {
      const first = await store.idempotencyKeys.claim(request());
      if (first.state !== "claimed") throw new Error("expected a claim");
      await store.idempotencyKeys.complete("user:ann", "k-1", first.claim_id, { status: 201, body: "{}" });
      await store.idempotencyKeys.claim(request({ key: "k-2" }));
      later(24 * 3_600_000);
      expect(await store.idempotencyKeys.prune()).toBe(2);
      expect((await store.idempotencyKeys.claim(request({ request_hash: "hash-b" }))).state).toBe("claimed");
    });

    it("lets exactly one of many claims racing for a key serve it", async () => {
      const claims = await Promise.all(
        Array.from({ length: 8 }, () => store.idempotencyKeys.claim(request())),
      );
      expect(claims.filter((claim) => claim.state === "claimed")).toHaveLength(1);
      expect(claims.filter((claim) => claim.state === "in_use")).toHaveLength(7);
    });
  });
});
