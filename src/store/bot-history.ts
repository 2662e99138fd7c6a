import { newId } from "../core/ids.js";
import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { BotAlertsTable, BotSamplesTable } from "./schema-bots.js";

/** One point of a bot's resource history. */
export type BotSample = BotSamplesTable;

/** The three resolutions and how long each is kept (docs/bots.md "Resource history and alerts"). */
export const sampleTiers = [
  { resolution: 5, keepMs: 60 * 60_000 },
  { resolution: 60, keepMs: 24 * 60 * 60_000 },
  { resolution: 600, keepMs: 7 * 24 * 60 * 60_000 },
] as const;

/** The finest resolution still kept for everything since `since`. */
export function resolutionFor(sinceMs: number, nowMs: number): number {
  const span = nowMs - sinceMs;
  for (const tier of sampleTiers) if (span <= tier.keepMs) return tier.resolution;
  return sampleTiers[sampleTiers.length - 1]!.resolution;
}

/** One alert episode of a bot. */
export type BotAlertRecord = BotAlertsTable;

export interface BotHistoryRepo {
  /** Stores runner samples (resolution 5); one already stored at the same time is kept. */
  addSamples(samples: readonly Omit<BotSample, "resolution">[]): Promise<void>;
  /** A bot's rows of one resolution at or after `since`, oldest first. */
  samples(botId: string, resolution: number, since: string): Promise<BotSample[]>;
  /**
   * Makes the 60 s rows from the 5 s ones and the 600 s rows from the 60 s ones, for every span
   * that ended before `now` and has none yet, then deletes every row past its tier's age.
   * Returns how many rows were made and deleted.
   */
  downsample(now?: Date): Promise<{ made: number; pruned: number }>;
  /** Opens an episode of `kind`; undefined when one of that kind is open already. */
  openAlert(alert: {
    bot_id: string;
    tenant_id: string | null;
    kind: string;
    message: string;
  }): Promise<BotAlertRecord | undefined>;
  /** Ends the open episode of `kind`, if any. */
  closeAlert(botId: string, kind: string): Promise<void>;
  notified(id: string, error: string | null): Promise<void>;
  /** A bot's episodes, newest first. */
  alerts(botId: string, limit?: number): Promise<BotAlertRecord[]>;
}

/** A row with its numeric columns as numbers, whatever the driver read them as. */
function toSample(row: BotSample): BotSample {
  return {
    ...row,
    resolution: Number(row.resolution),
    cpu_percent: Number(row.cpu_percent),
    memory_bytes: Number(row.memory_bytes),
    memory_limit_bytes: row.memory_limit_bytes === null ? null : Number(row.memory_limit_bytes),
    net_rx_bytes: Number(row.net_rx_bytes),
    net_tx_bytes: Number(row.net_tx_bytes),
    pids: Number(row.pids),
    restarts: Number(row.restarts),
  };
}

/** Averages of a span: CPU averaged, memory, pids and restarts at their highest, counters last. */
function rollUp(rows: readonly BotSample[], resolution: number, at: string): BotSample {
  const last = rows[rows.length - 1]!;
  return {
    bot_id: last.bot_id,
    tenant_id: last.tenant_id,
    resolution,
    at,
    cpu_percent: Math.round((rows.reduce((sum, row) => sum + row.cpu_percent, 0) / rows.length) * 100) / 100,
    memory_bytes: Math.max(...rows.map((row) => row.memory_bytes)),
    memory_limit_bytes: last.memory_limit_bytes,
    net_rx_bytes: last.net_rx_bytes,
    net_tx_bytes: last.net_tx_bytes,
    pids: Math.max(...rows.map((row) => row.pids)),
    restarts: Math.max(...rows.map((row) => row.restarts)),
  };
}

async function downsample(ctx: StoreContext, now: Date): Promise<{ made: number; pruned: number }> {
  let made = 0;
  let pruned = 0;
  for (let i = 1; i < sampleTiers.length; i++) {
    const from = sampleTiers[i - 1]!;
    const to = sampleTiers[i]!;
    const spanMs = to.resolution * 1000;
    const end = Math.floor(now.getTime() / spanMs) * spanMs;
    // Only spans the finer rows still cover, that have ended, and that have no row yet.
    const start = Math.floor((now.getTime() - from.keepMs) / spanMs) * spanMs;
    const rows = await ctx.db
      .selectFrom("bot_samples")
      .selectAll()
      .where("resolution", "=", from.resolution)
      .where("at", ">=", isoTime(new Date(start)))
      .where("at", "<", isoTime(new Date(end)))
      .orderBy("bot_id")
      .orderBy("at")
      .execute();
    const made_ = await ctx.db
      .selectFrom("bot_samples")
      .select(["bot_id", "at"])
      .where("resolution", "=", to.resolution)
      .where("at", ">=", isoTime(new Date(start)))
      .execute();
    const have = new Set(made_.map((row) => `${row.bot_id} ${row.at}`));
    const spans = new Map<string, BotSample[]>();
    for (const row of rows.map(toSample)) {
      const at = isoTime(new Date(Math.floor(Date.parse(row.at) / spanMs) * spanMs));
      const key = `${row.bot_id} ${at}`;
      if (have.has(key)) continue;
      const span = spans.get(key) ?? [];
      span.push(row);
      spans.set(key, span);
    }
    for (const [key, span] of spans) {
      const at = key.slice(key.indexOf(" ") + 1);
      await ctx.db
        .insertInto("bot_samples")
        .values(rollUp(span, to.resolution, at))
        .onConflict((conflict) => conflict.columns(["bot_id", "resolution", "at"]).doNothing())
        .execute();
      made += 1;
    }
  }
  for (const tier of sampleTiers) {
    const result = await ctx.db
      .deleteFrom("bot_samples")
      .where("resolution", "=", tier.resolution)
      .where("at", "<", isoTime(new Date(now.getTime() - tier.keepMs)))
      .executeTakeFirst();
    pruned += Number(result.numDeletedRows);
  }
  // Episodes are kept as long as the longest history.
  await ctx.db
    .deleteFrom("bot_alerts")
    .where("ended_at", "<", isoTime(new Date(now.getTime() - sampleTiers[2].keepMs)))
    .execute();
  return { made, pruned };
}

export function botHistoryRepo(ctx: StoreContext): BotHistoryRepo {
  return {
    async addSamples(samples) {
      for (const sample of samples) {
        await ctx.db
          .insertInto("bot_samples")
          .values({ ...sample, resolution: sampleTiers[0].resolution })
          .onConflict((conflict) => conflict.columns(["bot_id", "resolution", "at"]).doNothing())
          .execute();
      }
    },
    async samples(botId, resolution, since) {
      const rows = await ctx.db
        .selectFrom("bot_samples")
        .selectAll()
        .where("bot_id", "=", botId)
        .where("resolution", "=", resolution)
        .where("at", ">=", since)
        .orderBy("at")
        .execute();
      return rows.map(toSample);
    },
    downsample: (now) => downsample(ctx, now ?? ctx.now()),
    async openAlert(alert) {
      const record: BotAlertRecord = {
        id: newId("alert"),
        ...alert,
        started_at: isoTime(ctx.now()),
        ended_at: null,
        notified_at: null,
        notify_error: null,
      };
      try {
        await ctx.db.insertInto("bot_alerts").values(record).execute();
      } catch (error) {
        if (ctx.dialect.constraintViolation(error) === "unique") return undefined;
        throw error;
      }
      return record;
    },
    async closeAlert(botId, kind) {
      await ctx.db
        .updateTable("bot_alerts")
        .set({ ended_at: isoTime(ctx.now()) })
        .where("bot_id", "=", botId)
        .where("kind", "=", kind)
        .where("ended_at", "is", null)
        .execute();
    },
    async notified(id, error) {
      await ctx.db
        .updateTable("bot_alerts")
        .set({ notified_at: isoTime(ctx.now()), notify_error: error })
        .where("id", "=", id)
        .execute();
    },
    async alerts(botId, limit = 50) {
      return ctx.db
        .selectFrom("bot_alerts")
        .selectAll()
        .where("bot_id", "=", botId)
        .orderBy("started_at", "desc")
        .limit(limit)
        .execute();
    },
  };
}
