import type { Selectable, Updateable } from "kysely";
import type { StoreContext } from "./dialect.js";
import { decodeJson, encodeJson, isoTime, isoTimeOrNull, type RunnersTable } from "./schema.js";
import type { RunnerInput, RunnerRecord, RunnerStatus } from "./types.js";

function toRunnerRecord(row: Selectable<RunnersTable>): RunnerRecord {
  return {
    id: row.id,
    group: row.group_name,
    labels: decodeJson<string[]>(row.labels),
    mode: row.mode,
    capacity: row.capacity,
    cpus: row.cpus,
    memory: row.memory,
    hostname: row.hostname,
    tenant_id: row.tenant_id,
    status: row.status,
    connected_at: row.connected_at,
    last_heartbeat_at: row.last_heartbeat_at,
    version: row.version,
    token_id: row.token_id,
    replica_id: row.replica_id,
    shared: row.shared === 1,
    isolation: row.isolation,
  };
}

export async function upsertRunner(ctx: StoreContext, input: RunnerInput): Promise<RunnerRecord | undefined> {
  const advertised = {
    group_name: input.group,
    labels: encodeJson([...new Set(input.labels)]),
    mode: input.mode,
    capacity: input.capacity,
    cpus: input.cpus ?? null,
    memory: input.memory ?? null,
    hostname: input.hostname,
    tenant_id: input.tenant_id ?? null,
    version: input.version ?? null,
    shared: input.shared ? 1 : 0,
    isolation: input.isolation ?? "none",
  };
  const state: Updateable<RunnersTable> = {};
  if (input.status !== undefined) state.status = input.status;
  if (input.connected_at !== undefined) state.connected_at = isoTimeOrNull(input.connected_at);
  if (input.last_heartbeat_at !== undefined) state.last_heartbeat_at = isoTimeOrNull(input.last_heartbeat_at);
  if (input.token_id !== undefined) state.token_id = input.token_id;
  if (input.replica_id !== undefined) state.replica_id = input.replica_id;
  // One statement, so two runners racing for a free id cannot both win it.
  const row = await ctx.db
    .insertInto("runners")
    .values({
      id: input.id,
      ...advertised,
      status: "offline",
      connected_at: null,
      last_heartbeat_at: null,
      token_id: null,
      replica_id: null,
      ...state,
    })
    .onConflict((conflict) => {
      const update = conflict.column("id").doUpdateSet({ ...advertised, ...state });
      if (input.token_id === undefined) return update;
      const tokenId = input.token_id;
      return update.where((eb) =>
        eb.or([
          eb("runners.token_id", "is", null),
          eb("runners.token_id", "=", tokenId),
          eb.not(
            eb.exists(
              eb.selectFrom("tokens").select("tokens.id").whereRef("tokens.id", "=", "runners.token_id"),
            ),
          ),
        ]),
      );
    })
    .returningAll()
    .executeTakeFirst();
  return row && toRunnerRecord(row);
}

export async function setRunnerStatus(
  ctx: StoreContext,
  id: string,
  status: RunnerStatus,
  at: string,
  opts: { replicaId?: string } = {},
): Promise<RunnerRecord | undefined> {
  const when = isoTime(at);
  let update = ctx.db
    .updateTable("runners")
    .set(status === "online" ? { status, connected_at: when, last_heartbeat_at: when } : { status })
    .where("id", "=", id);
  if (opts.replicaId !== undefined) update = update.where("replica_id", "=", opts.replicaId);
  const row = await update.returningAll().executeTakeFirst();
  return row && toRunnerRecord(row);
}

export async function touchRunner(ctx: StoreContext, id: string, at: string): Promise<boolean> {
  const result = await ctx.db
    .updateTable("runners")
    .set({ last_heartbeat_at: isoTime(at) })
    .where("id", "=", id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function listRunners(
  ctx: StoreContext,
  query: { tenantId?: string | null; status?: RunnerStatus } = {},
): Promise<RunnerRecord[]> {
  let select = ctx.db.selectFrom("runners").selectAll();
  if (query.tenantId === null) select = select.where("tenant_id", "is", null);
  else if (query.tenantId !== undefined) select = select.where("tenant_id", "=", query.tenantId);
  if (query.status !== undefined) select = select.where("status", "=", query.status);
  const rows = await select.orderBy("id").execute();
  return rows.map(toRunnerRecord);
}

export async function getRunner(ctx: StoreContext, id: string): Promise<RunnerRecord | undefined> {
  const row = await ctx.db.selectFrom("runners").selectAll().where("id", "=", id).executeTakeFirst();
  return row && toRunnerRecord(row);
}
