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
    const answer = await this.store.botHookHits.take(botId, Math.floor(now / 1000), this.rate);
    if (answer.taken) return 0;
    // Seconds after this one, the window's oldest seconds no longer count; the wait is the first
    // that leaves room for one more (this second's requests count until the window passes them).
    const { before, current, after } = answer.window;
    const span = before.length + 1;
    const counts = [...before, current, ...after];
    const total = (some: number[]) => some.reduce((sum, count) => sum + count, 0);
    for (let wait = 1; wait < this.rate.windowSecs; wait++) {
      if (total(counts.slice(wait, wait + span)) < this.rate.burst) return wait;
    }
    return this.rate.windowSecs;
  }
}
