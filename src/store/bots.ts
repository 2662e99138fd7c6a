import type { Kysely, Selectable, Updateable } from "kysely";
import { liveBotStates } from "../core/bot-states.js";
import { RunyardError } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import { newId } from "../core/ids.js";
import type { StoreContext } from "./dialect.js";
import { type BotsTable, type Database, decodeJson, encodeJson, isoTime, isoTimeOrNull } from "./schema.js";
import type { BotPatch, BotQuota, BotRecord, IfBotState, ListBotsQuery, NewBot } from "./types.js";

function toBotRecord(ctx: StoreContext, row: Selectable<BotsTable>): BotRecord {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    owner: row.owner,
    name: row.name,
    mode: row.mode,
    spec: decodeJson(ctx.cipher.open(row.spec)),
    state: row.state,
    runner_id: row.runner_id,
    container_id: row.container_id,
    image: row.image,
    restarts: Number(row.restarts),
    restart_policy: row.restart_policy,
    exit_code: row.exit_code === null ? null : Number(row.exit_code),
    oom_killed: Number(row.oom_killed) !== 0,
    last_logs: row.last_logs === null ? null : ctx.cipher.open(row.last_logs),
    error: row.error === null ? null : decodeJson<ErrorInfo>(row.error),
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    expires_at: row.expires_at,
    run_id: row.run_id,
    memory_bytes: row.memory_bytes === null ? null : Number(row.memory_bytes),
    cpu_percent: row.cpu_percent === null ? null : Number(row.cpu_percent),
    stats_at: row.stats_at,
  };
}

function duplicateName(input: Pick<NewBot, "name">, cause: unknown): RunyardError {
  return new RunyardError("CONFLICT", `a bot named ${input.name} exists already`, {
    hint: `Pick another name, or remove that bot first (\`runyard bot rm ${input.name}\`).`,
    cause,
  });
}

export async function createBot(ctx: StoreContext, input: NewBot, quota?: BotQuota): Promise<BotRecord> {
  const now = isoTime(ctx.now());
  const values = {
    id: input.id ?? newId("bot"),
    tenant_id: input.tenant_id ?? null,
    owner: input.owner,
    name: input.name,
    mode: input.mode,
    spec: ctx.cipher.seal(encodeJson(input.spec)),
    state: input.state ?? "building",
    runner_id: null,
    container_id: null,
    image: input.image ?? null,
    restart_policy: input.restart_policy ?? "no",
    exit_code: null,
    last_logs: null,
    error: null,
    created_at: now,
    updated_at: now,
    started_at: null,
    finished_at: null,
    expires_at: isoTime(input.expires_at),
    run_id: null,
    memory_bytes: null,
    cpu_percent: null,
    stats_at: null,
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
}

export async function getBot(ctx: StoreContext, id: string): Promise<BotRecord | undefined> {
  const row = await ctx.db.selectFrom("bots").selectAll().where("id", "=", id).executeTakeFirst();
  return row && toBotRecord(ctx, row);
}

export async function findBot(
  ctx: StoreContext,
  tenantId: string | null,
  owner: string,
  name: string,
): Promise<BotRecord | undefined> {
  const row = await ctx.db
    .selectFrom("bots")
    .selectAll()
    .where("tenant_id", tenantId === null ? "is" : "=", tenantId)
    .where("owner", "=", owner)
    .where("name", "=", name)
    .where("state", "<>", "removed")
    .executeTakeFirst();
  return row && toBotRecord(ctx, row);
}

export async function listBots(ctx: StoreContext, query: ListBotsQuery = {}): Promise<BotRecord[]> {
  if (query.states?.length === 0) return [];
  let select = ctx.db.selectFrom("bots").selectAll();
  if (query.tenantId !== undefined) {
    select = select.where("tenant_id", query.tenantId === null ? "is" : "=", query.tenantId);
  }
  if (query.owner !== undefined) select = select.where("owner", "=", query.owner);
  if (query.states) select = select.where("state", "in", query.states);
  const rows = await select.orderBy("created_at").orderBy("id").execute();
  return rows.map((row) => toBotRecord(ctx, row));
}

export async function updateBot(
  ctx: StoreContext,
  id: string,
  patch: BotPatch,
  opts: IfBotState = {},
): Promise<BotRecord | undefined> {
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
  let update = ctx.db.updateTable("bots").set(set).where("id", "=", id);
  if (opts.ifState) update = update.where("state", "in", opts.ifState);
  try {
    const row = await update.returningAll().executeTakeFirst();
    return row && toBotRecord(ctx, row);
  } catch (error) {
    // Moving a removed bot back to life while another live bot took its name.
    if (ctx.dialect.constraintViolation(error) === "unique") {
      const bot = await getBot(ctx, id);
      throw duplicateName({ name: bot?.name ?? id }, error);
    }
    throw error;
  }
}

export function countLiveBots(ctx: StoreContext, tenantId: string | null, owner: string): Promise<number> {
  return countLive(ctx.db, tenantId, owner);
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

export async function expiredBots(ctx: StoreContext, now?: string): Promise<BotRecord[]> {
  const rows = await ctx.db
    .selectFrom("bots")
    .selectAll()
    .where("state", "=", "running")
    .where("expires_at", "<=", isoTime(now ?? ctx.now()))
    .orderBy("expires_at")
    .orderBy("id")
    .execute();
  return rows.map((row) => toBotRecord(ctx, row));
}
