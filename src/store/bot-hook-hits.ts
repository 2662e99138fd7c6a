import { type Kysely, sql } from "kysely";
import type { StoreContext } from "./dialect.js";
import type { Database } from "./schema.js";

/** Rows older than this many seconds are deleted as new seconds are counted. */
const keepSecs = 60;

/**
 * A bot's taken webhook requests around one second: that second's, and each of the
 * `windowSecs - 1` seconds before it and after it, oldest first (a replica whose clock is ahead,
 * or a request that reached the store before this one, counted the seconds after).
 */
export interface HookWindow {
  current: number;
  before: number[];
  after: number[];
}

/**
 * Webhook requests per bot and whole second, counted in the store so every replica sees the same
 * count (the rate limit of `POST /api/bots/ID/hook/...` holds however many replicas serve it).
 */
export interface BotHookHitsRepo {
  /**
   * Counts one request of `botId` in `second` (seconds since 1970) if every `windowSecs` whole
   * seconds in a row that hold `second` have fewer than `burst` counted. Deciding and counting are
   * one step for every replica, so concurrent requests never take more than the room between
   * them, and a refused request is never counted (not even for a moment another request could
   * see). A refused request is answered the window it found full.
   */
  take(
    botId: string,
    second: number,
    rate: { burst: number; windowSecs: number },
  ): Promise<{ taken: true } | { taken: false; window: HookWindow }>;
  /** Deletes every bot's counts of seconds before `second` (bots no longer called keep none). */
  prune(second: number): Promise<void>;
}

export function botHookHitsRepo(ctx: StoreContext): BotHookHitsRepo {
  /**
   * SQLite runs the one statement under its one write lock. PostgreSQL's statements each read what
   * was committed when they began, so two requests of the bot in different seconds would both find
   * room: a lock per bot until the statement's transaction commits puts them one after the other.
   * A request waiting for that lock holds a pool connection, so this replica's requests of a bot
   * first wait their turn here: a flood of one bot holds one connection, not the whole pool that
   * every other request needs (during 400 at once an unrelated GET took 0.4 to 1.3 s, not 20 ms).
   */
  const turns = new Map<string, Promise<unknown>>();
  const oneAtATime = <T>(botId: string, work: (db: Kysely<Database>) => Promise<T>): Promise<T> => {
    if (ctx.dialect.name === "sqlite") return work(ctx.db);
    const mine = (turns.get(botId) ?? Promise.resolve()).then(() =>
      ctx.db.transaction().execute(async (trx) => {
        await ctx.dialect.lockUntilCommit(trx, `bot-hook:${botId}`);
        return work(trx);
      }),
    );
    const done = mine.then(
      () => undefined,
      () => undefined,
    );
    turns.set(botId, done);
    void done.then(() => {
      if (turns.get(botId) === done) turns.delete(botId);
    });
    return mine;
  };

  return {
    async take(botId, second, rate) {
      const span = Math.max(1, Math.min(rate.windowSecs, keepSecs));
      const starts = Array.from({ length: span }, (_, k) => sql`(cast(${second - span + 1 + k} as bigint))`);
      const counted = await oneAtATime(botId, async (db) => {
        const { rows } = await sql<{ count: number | string }>`
          with starts (start) as (values ${sql.join(starts)})
          insert into bot_hook_hits (bot_id, second, count)
          select cast(${botId} as text), cast(${second} as bigint), 1
          where not exists (
            select 1 from starts
            where (select coalesce(sum(h.count), 0) from bot_hook_hits h
                   where h.bot_id = ${botId} and h.second >= starts.start
                     and h.second < starts.start + ${span}) >= ${rate.burst})
          on conflict (bot_id, second) do update set count = bot_hook_hits.count + 1
          returning count`.execute(db);
        return rows[0];
      });
      if (counted !== undefined) {
        if (Number(counted.count) === 1) {
          await ctx.db
            .deleteFrom("bot_hook_hits")
            .where("bot_id", "=", botId)
            .where("second", "<", second - keepSecs)
            .execute();
        }
        return { taken: true };
      }
      const first = second - span + 1;
      const rows = await ctx.db
        .selectFrom("bot_hook_hits")
        .select(["second", "count"])
        .where("bot_id", "=", botId)
        .where("second", ">=", first)
        .where("second", "<", second + span)
        .execute();
      const window: HookWindow = {
        current: 0,
        before: Array.from({ length: span - 1 }, () => 0),
        after: Array.from({ length: span - 1 }, () => 0),
      };
      for (const row of rows) {
        const at = Number(row.second);
        if (at < second) window.before[at - first] = Number(row.count);
        else if (at > second) window.after[at - second - 1] = Number(row.count);
        else window.current = Number(row.count);
      }
      return { taken: false, window };
    },
    async prune(second) {
      await ctx.db.deleteFrom("bot_hook_hits").where("second", "<", second).execute();
    },
  };
}
