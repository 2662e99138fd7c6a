import type { Selectable } from "kysely";
import type { ErrorInfo } from "../core/events.js";
import { decodeJson, encodeJson, isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { BotVersionsTable } from "./schema-bots.js";

export type BotVersionState = BotVersionsTable["state"];
export type BotVersionReason = BotVersionsTable["reason"];

/** One version of a bot: its start, an update, a rollback or an env change. */
export type BotVersionRecord = Omit<Selectable<BotVersionsTable>, "summary" | "error"> & {
  /** What may be shown of it: the source without archive bytes or passwords, env names. */
  summary: Record<string, unknown>;
  error: ErrorInfo | null;
};

export type NewBotVersion = Pick<BotVersionRecord, "bot_id" | "version" | "state" | "reason" | "summary"> &
  Partial<Pick<BotVersionRecord, "run_id" | "created_by">>;

export type BotVersionPatch = Partial<
  Pick<BotVersionRecord, "run_id" | "state" | "image" | "error" | "finished_at">
>;

function toRecord(row: Selectable<BotVersionsTable>): BotVersionRecord {
  return {
    ...row,
    version: Number(row.version),
    summary: decodeJson<Record<string, unknown>>(row.summary),
    error: row.error === null ? null : decodeJson<ErrorInfo>(row.error),
  };
}

/** The versions of each bot (migration 0037), numbered from 1 per bot. */
export interface BotVersionsRepo {
  /** Stores a version; a number the bot has already is a CONFLICT (two updates at once). */
  create(input: NewBotVersion): Promise<BotVersionRecord>;
  get(botId: string, version: number): Promise<BotVersionRecord | undefined>;
  /** The bot's versions, newest first. */
  list(botId: string): Promise<BotVersionRecord[]>;
  update(
    botId: string,
    version: number,
    patch: BotVersionPatch,
    opts?: { ifState?: readonly BotVersionState[] },
  ): Promise<BotVersionRecord | undefined>;
}

export function botVersionsRepo(ctx: StoreContext): BotVersionsRepo {
  return {
    async create(input) {
      const row = await ctx.db
        .insertInto("bot_versions")
        .values({
          bot_id: input.bot_id,
          version: input.version,
          run_id: input.run_id ?? null,
          state: input.state,
          reason: input.reason,
          summary: encodeJson(input.summary),
          created_by: input.created_by ?? null,
          created_at: isoTime(ctx.now()),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRecord(row);
    },
    async get(botId, version) {
      const row = await ctx.db
        .selectFrom("bot_versions")
        .selectAll()
        .where("bot_id", "=", botId)
        .where("version", "=", version)
        .executeTakeFirst();
      return row && toRecord(row);
    },
    async list(botId) {
      const rows = await ctx.db
        .selectFrom("bot_versions")
        .selectAll()
        .where("bot_id", "=", botId)
        .orderBy("version", "desc")
        .execute();
      return rows.map(toRecord);
    },
    async update(botId, version, patch, opts = {}) {
      if (opts.ifState?.length === 0) return undefined;
      const set: Partial<BotVersionsTable> = {};
      if (patch.run_id !== undefined) set.run_id = patch.run_id;
      if (patch.state !== undefined) set.state = patch.state;
      if (patch.image !== undefined) set.image = patch.image;
      if (patch.error !== undefined) set.error = patch.error === null ? null : encodeJson(patch.error);
      if (patch.finished_at !== undefined)
        set.finished_at = patch.finished_at === null ? null : isoTime(patch.finished_at);
      if (Object.keys(set).length === 0) return this.get(botId, version);
      let update = ctx.db
        .updateTable("bot_versions")
        .set(set)
        .where("bot_id", "=", botId)
        .where("version", "=", version);
      if (opts.ifState) update = update.where("state", "in", opts.ifState);
      const row = await update.returningAll().executeTakeFirst();
      return row && toRecord(row);
    },
  };
}
