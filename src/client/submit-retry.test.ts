import { describe, expect, it } from "vitest";
import { type RetryNotice, retryAfterMs, sendIdempotent } from "./submit-retry.js";

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

const unavailable = (retryAfter?: string): Response =>
  json(
    503,
    { error: { code: "STORE_UNAVAILABLE", message: "the database is unreachable", hint: "wait" } },
    retryAfter === undefined ? {} : { "retry-after": retryAfter },
  );

const reset = (): Error => new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
const refused = (): Error => new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
const dropped = (error: unknown): string | undefined =>
  (error as { cause?: { code?: string } }).cause?.code === "ECONNRESET"
    ? "the connection was reset"
    : undefined;

/** A submit whose attempts get `answers` in turn (a Response, or an Error thrown as fetch throws). */
function attempts(answers: Array<Response | Error>): {
  send: (key: string) => Promise<Response>;
  keys: string[];
} {
  const keys: string[] = [];
  return {
    keys,
    send: async (key) => {
      keys.push(key);
      const next = answers.shift();
      if (next === undefined) throw new Error("more attempts than the test expected");
      if (next instanceof Error) throw next;
      return next;
    },
  };
}

describe("sendIdempotent", () => {
  it("sends again with the same key after a 503 and a reset, and resolves with the answer that landed", async () => {
    const { send, keys } = attempts([unavailable("0"), reset(), json(201, { run_id: "run_1" })]);
    const notices: RetryNotice[] = [];
    const response = await sendIdempotent(send, {
      retryForMs: 10_000,
      droppedConnection: dropped,
      onRetry: (notice) => notices.push(notice),
    });
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({ run_id: "run_1" });
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(notices.map((notice) => [notice.attempt, notice.reason])).toEqual([
      [2, "the server answered 503 STORE_UNAVAILABLE: the database is unreachable"],
      [3, "the connection was reset"],
    ]);
    expect(notices[0]?.waitMs).toBe(0);
  });

  it("waits what Retry-After says", async () => {
    const { send } = attempts([unavailable("1"), json(201, {})]);
    const started = Date.now();
    const notices: RetryNotice[] = [];
    await sendIdempotent(send, {
      retryForMs: 10_000,
      droppedConnection: dropped,
      onRetry: (n) => notices.push(n),
    });
    expect(notices[0]?.waitMs).toBe(1000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
  });

  it("retries 409 IDEMPOTENCY_KEY_IN_USE, and takes any other 409 as the answer", async () => {
    const inUse = json(
      409,
      { error: { code: "IDEMPOTENCY_KEY_IN_USE", message: "busy" } },
      { "retry-after": "0" },
    );
    const conflict = json(409, { error: { code: "CONFLICT", message: "answered already" } });
    const { send, keys } = attempts([inUse, conflict]);
    const response = await sendIdempotent(send, { retryForMs: 10_000, droppedConnection: dropped });
    expect(response.status).toBe(409);
    expect(keys).toHaveLength(2);
  });

  it("gives up when the time is up: the last answer is the answer", async () => {
    const { send, keys } = attempts([unavailable("0"), unavailable("0"), unavailable("5")]);
    let gaveUp: { attempts: number; reason: string } | undefined;
    const response = await sendIdempotent(send, {
      retryForMs: 2000,
      droppedConnection: dropped,
      onGiveUp: (notice) => {
        gaveUp = notice;
      },
    });
    expect(response.status).toBe(503);
    expect(keys).toHaveLength(3);
    expect(gaveUp).toMatchObject({ attempts: 3, reason: expect.stringContaining("503 STORE_UNAVAILABLE") });
  });

  it("rethrows the last dropped connection when the time is up", async () => {
    const { send } = attempts([reset()]);
    await expect(sendIdempotent(send, { retryForMs: 0, droppedConnection: dropped })).rejects.toThrow(
      "fetch failed",
    );
  });

  it("throws at once an error that is no dropped connection", async () => {
    const { send, keys } = attempts([refused()]);
    await expect(sendIdempotent(send, { retryForMs: 60_000, droppedConnection: dropped })).rejects.toThrow(
      "fetch failed",
    );
    expect(keys).toHaveLength(1);
  });

  it("gives each submit a new key", async () => {
    const first = attempts([json(201, {})]);
    const second = attempts([json(201, {})]);
    await sendIdempotent(first.send, { retryForMs: 0, droppedConnection: dropped });
    await sendIdempotent(second.send, { retryForMs: 0, droppedConnection: dropped });
    expect(first.keys[0]).not.toBe(second.keys[0]);
  });
});

describe("retryAfterMs", () => {
  it("reads seconds and HTTP dates", () => {
    expect(retryAfterMs("3")).toBe(3000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs("soon")).toBeUndefined();
  });
});
