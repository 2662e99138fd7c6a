import type { Store } from "../../store/index.js";

/** Webhook requests a bot takes in any two whole seconds in a row: 10 a second, 20 at once. */
export const hookBurst = 20;
export const hookPerSecond = hookBurst / 2;

/**
 * The webhook rate limit of each bot, counted in the store so it holds however many replicas
 * take the requests: a request is taken while the bot's requests in this whole second and the
 * one before number at most `hookBurst` with it. A refused request is not counted (a flood that
 * is refused does not keep the bot's hooks shut once it stops).
 */
export class HookLimiter {
  constructor(
    private readonly store: Pick<Store, "botHookHits">,
    private readonly burst = hookBurst,
  ) {}

  /** Takes one request; the whole seconds to wait when none is left, else 0. */
  async take(botId: string, now = Date.now()): Promise<number> {
    const second = Math.floor(now / 1000);
    const { current, previous } = await this.store.botHookHits.hit(botId, second);
    if (current + previous <= this.burst) return 0;
    await this.store.botHookHits.unhit(botId, second);
    // This second's requests still count in the next one; the one before's no longer.
    return current > this.burst ? 2 : 1;
  }
}
