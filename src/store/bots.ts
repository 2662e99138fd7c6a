import type { Kysely, Selectable, Updateable } from "kysely";
import type { BotHealthReport } from "../core/bot-health.js";
import { type BotMode, type BotState, liveBotStates, upBotStates } from "../core/bot-states.js";
import { RunyardError } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import { newId } from "../core/ids.js";
import { decodeJson, encodeJson, isoTime, isoTimeOrNull } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { Database } from "./schema.js";
import type { BotsTable } from "./schema-bots.js";

/** A bot as stored (`spec` and `last_logs` opened: the store seals them at rest). */
export type BotRecord = Omit<Selectable<BotsTable>, "spec" | "oom_killed" | "error" | "health"> & {
  /** What the bot is made of (files, env with secrets, registry credentials), as JSON. */
  spec: unknown;
  oom_killed: boolean;
  error: ErrorInfo | null;
  /** What its health check's last probe found; null without one (or before the first probe). */
  health: BotHealthReport | null;
};

/** What `bots.create` needs; the rest starts empty. */
export interface NewBot {
  /** Defaults to a fresh `newId("bot")`. */
  id?: string;
  tenant_id?: string | null;
  owner: string;
  name: string;
  mode: BotMode;
  spec: unknown;
  /** Defaults to `building`. */
  state?: BotState;
  image?: string | null;
  /** Defaults to `no`. */
  restart_policy?: string;
  expires_at: string;
}

/** The per-owner cap `bots.create` checks in the same transaction as the insert. */
export interface BotQuota {
  /** Live bots (building, pulling, running) the owner may have; the new one is refused past it. */
  maxLive: number;
  /** Named in the QUOTA_EXCEEDED message and hint. */
  setting: string;
}

/** The fields of a bot that change over its life; absent keys are left as they are. */
export type BotPatch = Partial<
  Pick<
    BotRecord,
    | "state"
    | "runner_id"
    | "container_id"
    | "image"
    | "restarts"
    | "restart_policy"
    | "exit_code"
    | "oom_killed"
    | "last_logs"
    | "error"
    | "started_at"
    | "finished_at"
    | "expires_at"
    | "run_id"
    | "memory_bytes"
    | "cpu_percent"
    | "stats_at"
    | "health"
    | "version"
  >
>;

/** Filters of `bots.list`; absent keys do not filter. */
export interface ListBotsQuery {
  /** One tenant's bots; `null` for bots outside any tenant. */
  tenantId?: string | null;
  owner?: string;
  states?: readonly BotState[];
}

/** A compare-and-set guard on a bot's state (like `IfStatus`). */
export interface IfBotState {
  ifState?: readonly BotState[];
  /**
   * Only while this run is the bot's current life (or it has none yet): the runs of versions an
   * update is still trying, or one it replaced, change nothing on the bot.
   */
  ifRun?: string;
}

function toBotRecord(ctx: StoreContext, row: Selectable<BotsTable>): BotRecord {
  return {
    ...row,
    spec: decodeJson(ctx.cipher.open(row.spec)),
    restarts: Number(row.restarts),
    exit_code: row.exit_code === null ? null : Number(row.exit_code),
    oom_killed: Number(row.oom_killed) !== 0,
    last_logs: row.last_logs === null ? null : ctx.cipher.open(row.last_logs),
    error: row.error === null ? null : decodeJson<ErrorInfo>(row.error),
    memory_bytes: row.memory_bytes === null ? null : Number(row.memory_bytes),
    cpu_percent: row.cpu_percent === null ? null : Number(row.cpu_percent),
    health: row.health == null ? null : decodeJson<BotHealthReport>(row.health),
    version: row.version == null ? 1 : Number(row.version),
  };
}

function duplicateName(input: Pick<NewBot, "name">, cause: unknown): RunyardError {
  return new RunyardError("CONFLICT", `a bot named ${input.name} exists already`, {
    hint: `Pick another name, or remove that bot first (\`runyard bot rm ${input.name}\`).`,
    cause,
  });
}

async function countLive(db: Kysely<Database>, tenantId: string | null, owner: string): Promise<number> {
  const row = await db
    .selectFrom("bots")
    .select((eb) => eb.fn.countAll<number | string>().as("count"))
    .where("tenant_id", tenantId === null ? "is" : "=", tenantId)
    .where("owner", "=", owner)
    .where("state", "in", liveBotStates)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** The bots: long-lived containers with a lifetime, one run per life. */
export interface BotsRepo {
  /**
   * Stores a new bot; a name the owner has for a bot not `removed` is a CONFLICT. With `quota`,
   * the owner's live bots are counted and the bot inserted in one transaction under a per-owner
   * lock: concurrent starts never pass the cap together.
   */
  create(input: NewBot, quota?: BotQuota): Promise<BotRecord>;
  /** One bot, or undefined. */
  get(id: string): Promise<BotRecord | undefined>;
  /** The owner's bot of this name that is not `removed`, or undefined. */
  find(tenantId: string | null, owner: string, name: string): Promise<BotRecord | undefined>;
  /** Bots oldest first, filtered. */
  list(query?: ListBotsQuery): Promise<BotRecord[]>;
  /** Changes a bot; undefined when it does not exist or its state is not in `ifState`. */
  update(id: string, patch: BotPatch, opts?: IfBotState): Promise<BotRecord | undefined>;
  /** The owner's bots being built, pulled or running (what the per-user quota counts). */
  countLive(tenantId: string | null, owner: string): Promise<number>;
  /** Running bots whose `expires_at` is not after `now` (default: the store clock's now). */
  expired(now?: string): Promise<BotRecord[]>;
}

export function botsRepo(ctx: StoreContext): BotsRepo {
  const bots = () => ctx.db.selectFrom("bots").selectAll();
  const repo: BotsRepo = {
    async create(input, quota) {
      const now = isoTime(ctx.now());
      const values = {
        id: input.id ?? newId("bot"),
        tenant_id: input.tenant_id ?? null,
        owner: input.owner,
        name: input.name,
        mode: input.mode,
        spec: ctx.cipher.seal(encodeJson(input.spec)),
        state: input.state ?? "building",
        image: input.image ?? null,
        restart_policy: input.restart_policy ?? "no",
        created_at: now,
        updated_at: now,
        expires_at: isoTime(input.expires_at),
      };
      try {
        const row = await ctx.db.transaction().execute(async (trx) => {
          if (quota) {
            await ctx.dialect.lockUntilCommit(trx, `bots:${values.tenant_id ?? ""}:${values.owner}`);
            const live = await countLive(trx, values.tenant_id, values.owner);
            if (live >= quota.maxLive) {
              throw new RunyardError(
                "QUOTA_EXCEEDED",
                `Maximum ${quota.maxLive} bots: ${live} of yours are building or running`,
                {
                  hint: `Stop one first (\`runyard bot stop NAME\`; \`runyard bot list\` shows them), or ask an admin to raise ${quota.setting}.`,
                },
              );
            }
          }
          return trx.insertInto("bots").values(values).returningAll().executeTakeFirstOrThrow();
        });
        return toBotRecord(ctx, row);
      } catch (error) {
        if (ctx.dialect.constraintViolation(error) === "unique") throw duplicateName(input, error);
        throw error;
      }
    },
    async get(id) {
      const row = await bots().where("id", "=", id).executeTakeFirst();
      return row && toBotRecord(ctx, row);
    },
    async find(tenantId, owner, name) {
      const row = await bots()
        .where("tenant_id", tenantId === null ? "is" : "=", tenantId)
        .where("owner", "=", owner)
        .where("name", "=", name)
        .where("state", "<>", "removed")
        .executeTakeFirst();
      return row && toBotRecord(ctx, row);
    },
    async list(query = {}) {
      if (query.states?.length === 0) return [];
      let select = bots();
      if (query.tenantId !== undefined) {
        select = select.where("tenant_id", query.tenantId === null ? "is" : "=", query.tenantId);
      }
      if (query.owner !== undefined) select = select.where("owner", "=", query.owner);
      if (query.states) select = select.where("state", "in", query.states);
      const rows = await select.orderBy("created_at").orderBy("id").execute();
      return rows.map((row) => toBotRecord(ctx, row));
    },
    async update(id, patch, opts = {}) {
      if (opts.ifState?.length === 0) return undefined;
      const set: Updateable<BotsTable> = { updated_at: isoTime(ctx.now()) };
      if (patch.state !== undefined) set.state = patch.state;
      if (patch.runner_id !== undefined) set.runner_id = patch.runner_id;
      if (patch.container_id !== undefined) set.container_id = patch.container_id;
      if (patch.image !== undefined) set.image = patch.image;
      if (patch.restarts !== undefined) set.restarts = patch.restarts;
      if (patch.restart_policy !== undefined) set.restart_policy = patch.restart_policy;
      if (patch.exit_code !== undefined) set.exit_code = patch.exit_code;
      if (patch.oom_killed !== undefined) set.oom_killed = patch.oom_killed ? 1 : 0;
      if (patch.last_logs !== undefined) {
        set.last_logs = patch.last_logs === null ? null : ctx.cipher.seal(patch.last_logs);
      }
      if (patch.error !== undefined) set.error = patch.error === null ? null : encodeJson(patch.error);
      if (patch.started_at !== undefined) set.started_at = isoTimeOrNull(patch.started_at);
      if (patch.finished_at !== undefined) set.finished_at = isoTimeOrNull(patch.finished_at);
      if (patch.expires_at !== undefined) set.expires_at = isoTime(patch.expires_at);
      if (patch.run_id !== undefined) set.run_id = patch.run_id;
      if (patch.memory_bytes !== undefined) set.memory_bytes = patch.memory_bytes;
      if (patch.cpu_percent !== undefined) set.cpu_percent = patch.cpu_percent;
      if (patch.stats_at !== undefined) set.stats_at = isoTimeOrNull(patch.stats_at);
      if (patch.health !== undefined) set.health = patch.health === null ? null : encodeJson(patch.health);
      if (patch.version !== undefined) set.version = patch.version;
      let update = ctx.db.updateTable("bots").set(set).where("id", "=", id);
      if (opts.ifState) update = update.where("state", "in", opts.ifState);
      const ifRun = opts.ifRun;
      if (ifRun !== undefined)
        update = update.where((eb) => eb.or([eb("run_id", "is", null), eb("run_id", "=", ifRun)]));
      try {
        const row = await update.returningAll().executeTakeFirst();
        return row && toBotRecord(ctx, row);
      } catch (error) {
        // Moving a removed bot back to life while another live bot took its name.
        if (ctx.dialect.constraintViolation(error) === "unique") {
          const bot = await repo.get(id);
          throw duplicateName({ name: bot?.name ?? id }, error);
        }
        throw error;
      }
    },
    countLive(tenantId, owner) {
      return countLive(ctx.db, tenantId, owner);
    },
    async expired(now) {
      const rows = await bots()
        .where("state", "in", upBotStates)
        .where("expires_at", "<=", isoTime(now ?? ctx.now()))
        .orderBy("expires_at")
        .orderBy("id")
        .execute();
      return rows.map((row) => toBotRecord(ctx, row));
    },
  };
  return repo;
}
