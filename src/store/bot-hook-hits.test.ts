import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { HookLimiter } from "../server/bots/hook-limiter.js";
import type { Store } from "./types.js";

describe.each(storeBackends)("the webhook rate limit counted in the store on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let other: Store | undefined;

  beforeEach(async () => {
    opened = await backend.open();
    store = opened.store;
  });

  afterEach(async () => {
    await other?.close();
    other = undefined;
    await opened.dispose();
  });

  it("takes 20 within two whole seconds, refuses the next with the seconds to wait, and takes again as the seconds pass", async () => {
    const limiter = new HookLimiter(store);
    const t0 = Date.parse("2026-03-01T10:00:00.000Z");
    const taken = [];
    for (let i = 0; i < 25; i++) taken.push(await limiter.take("bot_a", t0 + i));
    expect(taken.filter((wait) => wait === 0)).toHaveLength(20);
    // This second's 20 still count in the next one: two seconds to wait.
    expect(taken.slice(20)).toEqual([2, 2, 2, 2, 2]);
    expect(await limiter.take("bot_a", t0 + 1000)).toBe(1);
    // Refused requests were not counted: two seconds on, the bot takes 20 again.
    const later = [];
    for (let i = 0; i < 21; i++) later.push(await limiter.take("bot_a", t0 + 2000 + i));
    expect(later.filter((wait) => wait === 0)).toHaveLength(20);
    // Another bot has its own count.
    expect(await limiter.take("bot_b", t0 + 2100)).toBe(0);
  });

  it("holds across two replicas on the same database: what one took counts on the other, racing too", async () => {
    other = await opened.reopen();
    const first = new HookLimiter(store);
    const second = new HookLimiter(other);
    const t0 = Date.parse("2026-03-01T11:00:00.000Z");
    // 30 at once, split over the two replicas: exactly 20 are taken.
    const waits = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? first : second).take("bot_x", t0 + (i % 500))),
    );
    expect(waits.filter((wait) => wait === 0)).toHaveLength(20);
    expect(waits.filter((wait) => wait > 0).every((wait) => wait === 2)).toBe(true);
    // The next second, neither takes one (the 20 still count), nor once the other replica was asked.
    expect(await first.take("bot_x", t0 + 1200)).toBe(1);
    expect(await second.take("bot_x", t0 + 1300)).toBe(1);
  });

  it("forgets counts older than a minute as new seconds come", async () => {
    const limiter = new HookLimiter(store);
    const t0 = Date.parse("2026-03-01T12:00:00.000Z");
    await limiter.take("bot_a", t0);
    await limiter.take("bot_a", t0 + 120_000);
    const look = (botId: string, second: number) =>
      store.botHookHits.take(botId, second, { burst: 0, windowSecs: 2 });
    // The second just after t0 had none; the one of t0 is gone, so it is not counted as the one before.
    expect(await look("bot_a", Math.floor(t0 / 1000) + 1)).toEqual({
      taken: false,
      window: { current: 0, before: [0], after: [0] },
    });
    // The leader's prune takes every bot's old counts, of bots no longer called too.
    await limiter.take("bot_quiet", t0 + 200_000);
    await store.botHookHits.prune(Math.floor((t0 + 400_000) / 1000));
    expect(await look("bot_quiet", Math.floor((t0 + 201_000) / 1000))).toEqual({
      taken: false,
      window: { current: 0, before: [0], after: [0] },
    });
  });

  it("counts over a longer window when the server sets one: a burst of 30 in 10 s, and waits until its oldest seconds pass", async () => {
    const limiter = new HookLimiter(store, { burst: 30, windowSecs: 10 });
    const t0 = Date.parse("2026-03-01T13:00:00.000Z");
    // 10 in each of three seconds fill it; the fourth second takes none.
    const taken = [];
    for (let second = 0; second < 3; second++)
      for (let i = 0; i < 10; i++) taken.push(await limiter.take("bot_w", t0 + second * 1000 + i));
    expect(taken.every((wait) => wait === 0)).toBe(true);
    // Room comes back when t0's second leaves the window: 10 s after it, 7 s after t0 + 3 s.
    expect(await limiter.take("bot_w", t0 + 3000)).toBe(7);
    expect(await limiter.take("bot_w", t0 + 9999)).toBe(1);
    // Counted in the store: a second replica with the same rate sees the same full window.
    other = await opened.reopen();
    expect(await new HookLimiter(other, { burst: 30, windowSecs: 10 }).take("bot_w", t0 + 9500)).toBe(1);
    expect(await limiter.take("bot_w", t0 + 10_000)).toBe(0);
    // A window of one second counts only the second itself.
    const perSecond = new HookLimiter(store, { burst: 2, windowSecs: 1 });
    const waits = [];
    for (let i = 0; i < 3; i++) waits.push(await perSecond.take("bot_s", t0 + i));
    expect(waits).toEqual([0, 0, 1]);
    expect(await perSecond.take("bot_s", t0 + 1000)).toBe(0);
  });

  it("matches a model over every rate's edges: at most the burst in any window, Retry-After exact, and taken once waited", async () => {
    const t0 = Date.parse("2026-03-01T14:00:00.000Z");
    const s0 = Math.floor(t0 / 1000);
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (const rate of [
      { burst: 1, windowSecs: 1 },
      { burst: 1, windowSecs: 60 },
      { burst: 3, windowSecs: 2 },
      { burst: 5, windowSecs: 7 },
      { burst: 4, windowSecs: 60 },
    ]) {
      const limiter = new HookLimiter(store, rate);
      const botId = `bot_m_${rate.burst}_${rate.windowSecs}`;
      const taken = new Map<number, number>();
      const inWindow = (second: number) => {
        let sum = 0;
        for (let s = second - rate.windowSecs + 1; s <= second; s++) sum += taken.get(s) ?? 0;
        return sum;
      };
      let second = s0;
      for (let i = 0; i < 150; i++) {
        second += [0, 0, 0, 1, 1, 2, rate.windowSecs - 1, rate.windowSecs, 61][Math.floor(random() * 9)]!;
        const now = second * 1000 + Math.floor(random() * 1000);
        const wait = await limiter.take(botId, now);
        const room = inWindow(second) < rate.burst;
        expect(wait === 0, `request ${i} at +${second - s0} s`).toBe(room);
        if (room) {
          taken.set(second, (taken.get(second) ?? 0) + 1);
          continue;
        }
        // The first second with room, never 0 nor past the window.
        let expected = 1;
        while (inWindow(second + expected) >= rate.burst) expected++;
        expect(wait, `request ${i} at +${second - s0} s`).toBe(expected);
        expect(wait).toBeLessThanOrEqual(rate.windowSecs);
        // Waited, it is taken, at the very start of that second; a second earlier it was not.
        if (random() < 0.5) {
          second += wait;
          expect(await limiter.take(botId, second * 1000)).toBe(0);
          taken.set(second, (taken.get(second) ?? 0) + 1);
        }
      }
    }
  });

  it("keeps a 60 s window whole through the leader's prune and a minute's quiet, and one bot's counts are its own", async () => {
    const limiter = new HookLimiter(store, { burst: 2, windowSecs: 60 });
    const t0 = Date.parse("2026-03-01T15:00:00.999Z");
    const s0 = Math.floor(t0 / 1000);
    expect(await limiter.take("bot_long", t0)).toBe(0);
    expect(await limiter.take("bot_long", t0 + 30_000)).toBe(0);
    // The leader prunes as bot-alerts.ts does, at the last second the first one still counts.
    await store.botHookHits.prune(s0 + 59 - 60);
    expect(await limiter.take("bot_long", (s0 + 59) * 1000)).toBe(1);
    expect(await limiter.take("bot_long", (s0 + 59) * 1000 + 999)).toBe(1);
    // Another bot, even one whose id shares a prefix, is not affected.
    expect(await limiter.take("bot_lon", (s0 + 59) * 1000)).toBe(0);
    expect(await limiter.take("bot_long2", (s0 + 59) * 1000)).toBe(0);
    expect(await limiter.take("bot_long", (s0 + 60) * 1000)).toBe(0);
    // Its second of t0 + 30 s counts until t0 + 90 s.
    expect(await limiter.take("bot_long", (s0 + 61) * 1000)).toBe(29);
  });

  it("takes exactly the burst of a flood racing over two replicas and across a second's turn", async () => {
    other = await opened.reopen();
    const rate = { burst: 20, windowSecs: 10 };
    const limiters = [new HookLimiter(store, rate), new HookLimiter(other, rate)];
    const t0 = Date.parse("2026-03-01T16:00:00.000Z");
    // 60 at once: the first half in one second, the rest in the next, each replica taking every
    // other one. Refused requests must not count against the others, on either side of the turn.
    const waits = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        limiters[i % 2]!.take("bot_f", t0 + 900 + Math.floor(i / 30) * 200 + (i % 30)),
      ),
    );
    expect(waits.filter((wait) => wait === 0)).toHaveLength(20);
    // Both seconds' taken requests leave the window 10 s after t0's second: refused ones wait for that.
    expect(waits.filter((wait) => wait > 0).every((wait) => wait >= 1 && wait <= 10)).toBe(true);
    expect(await limiters[0]!.take("bot_f", t0 + 9000)).toBeGreaterThan(0);
  });

  it("counts a second a request reaches the store late, or from a replica whose clock is behind, against the seconds after it", async () => {
    const limiter = new HookLimiter(store, { burst: 20, windowSecs: 2 });
    const t0 = Date.parse("2026-03-01T17:00:00.000Z");
    for (let i = 0; i < 20; i++) expect(await limiter.take("bot_k", t0 + 1000 + i)).toBe(0);
    // A request of t0's second counted after them: t0 and t0 + 1 s are one window, already full.
    const wait = await limiter.take("bot_k", t0 + 999);
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(2);
    // Seconds a whole window after it are in no window with it.
    for (let i = 0; i < 20; i++) expect(await limiter.take("bot_j", t0 + 2000 + i)).toBe(0);
    expect(await limiter.take("bot_j", t0)).toBe(0);
  });
});
