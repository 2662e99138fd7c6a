import type { Store } from "../../store/index.js";

/**
 * How many webhook requests a bot takes: at most `burst` in any `windowSecs` whole seconds in a row
 * (`RUNYARD_BOT_HOOK_BURST`, `RUNYARD_BOT_HOOK_WINDOW_SECS`).
 */
export interface HookRate {
  burst: number;
  windowSecs: number;
}

/** 20 in any two whole seconds: 10 a second, 20 at once. */
export const defaultHookRate: HookRate = { burst: 20, windowSecs: 2 };

/**
 * The webhook rate limit of each bot, counted in the store so it holds however many replicas
 * take the requests: a request is taken while the bot's requests in this whole second and the
 * `windowSecs - 1` before number at most `burst` with it. A refused request is not counted (a
 * flood that is refused does not keep the bot's hooks shut once it stops).
 */
export class HookLimiter {
  constructor(
    private readonly store: Pick<Store, "botHookHits">,
    private readonly rate: HookRate = defaultHookRate,
  ) {}

  /** Takes one request; the whole seconds to wait when none is left, else 0. */
  async take(botId: string, now = Date.now()): Promise<number> {
    const second = Math.floor(now / 1000);
    const { current, before, after } = await this.store.botHookHits.hit(botId, second, this.rate.windowSecs);
    const span = before.length + 1;
    const total = (counts: number[]) => counts.reduce((sum, count) => sum + count, 0);
    const earlier = total(before);
    // Taken while every window this second is in holds at most `burst` with it: the ones with the
    // seconds after it too (counted by a replica whose clock is ahead, or by requests that reached
    // the store before this one).
    const all = [...before, current, ...after];
    let fits = true;
    for (let start = 0; start < span; start++)
      fits &&= total(all.slice(start, start + span)) <= this.rate.burst;
    if (fits) return 0;
    await this.store.botHookHits.unhit(botId, second);
    // Seconds after this one, the window's oldest seconds no longer count; the wait is the first
    // that leaves room for one more (this second's requests count until the window passes them).
    // Of this second's count, at most what the seconds before left room for was taken: the rest are
    // refused requests, on other replicas too, not yet taken back (a flood would otherwise make the
    // wait the whole window).
    const counts = [...before, Math.min(current - 1, Math.max(0, this.rate.burst - earlier)), ...after];
    for (let wait = 1; wait < this.rate.windowSecs; wait++) {
      if (total(counts.slice(wait, wait + span)) < this.rate.burst) return wait;
    }
    return this.rate.windowSecs;
  }
}
