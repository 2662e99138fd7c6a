import type { StoreContext } from "./dialect.js";

/** Rows older than this many seconds are deleted as new seconds are counted. */
const keepSecs = 60;

/**
 * Webhook requests per bot and whole second, counted in the store so every replica sees the same
 * count (the rate limit of `POST /api/bots/ID/hook/...` holds however many replicas serve it).
 */
export interface BotHookHitsRepo {
  /**
   * Counts one request of `botId` in `second` (seconds since 1970); answers the count of that
   * second with this one, and of each of the `windowSecs - 1` seconds before it and after it, oldest
   * first (a replica whose clock is ahead, or a request that reached the store before this one,
   * counted the seconds after).
   */
  hit(
    botId: string,
    second: number,
    windowSecs: number,
  ): Promise<{ current: number; before: number[]; after: number[] }>;
  /** Takes back one request of `second` (it was refused). */
  unhit(botId: string, second: number): Promise<void>;
  /** Deletes every bot's counts of seconds before `second` (bots no longer called keep none). */
  prune(second: number): Promise<void>;
}

export function botHookHitsRepo(ctx: StoreContext): BotHookHitsRepo {
  return {
    async hit(botId, second, windowSecs) {
      // One statement: concurrent replicas each get a distinct count.
      const row = await ctx.db
        .insertInto("bot_hook_hits")
        .values({ bot_id: botId, second, count: 1 })
        .onConflict((conflict) =>
          conflict.columns(["bot_id", "second"]).doUpdateSet((eb) => ({
            count: eb("bot_hook_hits.count", "+", 1),
          })),
        )
        .returning("count")
        .executeTakeFirstOrThrow();
      const current = Number(row.count);
      if (current === 1) {
        await ctx.db
          .deleteFrom("bot_hook_hits")
          .where("bot_id", "=", botId)
          .where("second", "<", second - keepSecs)
          .execute();
      }
      const span = Math.max(1, Math.min(windowSecs, keepSecs));
      const first = second - span + 1;
      const rows =
        span > 1
          ? await ctx.db
              .selectFrom("bot_hook_hits")
              .select(["second", "count"])
              .where("bot_id", "=", botId)
              .where("second", ">=", first)
              .where("second", "<", second + span)
              .where("second", "<>", second)
              .execute()
          : [];
      const before = Array.from({ length: span - 1 }, () => 0);
      const after = Array.from({ length: span - 1 }, () => 0);
      for (const row of rows) {
        const at = Number(row.second);
        if (at < second) before[at - first] = Number(row.count);
        else after[at - second - 1] = Number(row.count);
      }
      return { current, before, after };
    },
    async prune(second) {
      await ctx.db.deleteFrom("bot_hook_hits").where("second", "<", second).execute();
    },
    async unhit(botId, second) {
      await ctx.db
        .updateTable("bot_hook_hits")
        .set((eb) => ({ count: eb("count", "-", 1) }))
        .where("bot_id", "=", botId)
        .where("second", "=", second)
        .execute();
    },
  };
}
