import type { Selectable, Updateable } from "kysely";
import type { RunnerInfo } from "../core/protocol.js";
import { decodeJson, encodeJson, isoTime, isoTimeOrNull } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { RunnersTable } from "./schema.js";

export type RunnerStatus = "online" | "offline";

/** How a runner keeps each run from the others and from itself (see `RunnerInfo.isolation`). */
export type RunnerIsolation = RunnerInfo["isolation"];

/** A runner daemon as it advertised itself (the ADOS runners list, `GET /api/runners`): its row, decoded. */
export type RunnerRecord = Omit<RunnersTable, "group_name" | "labels" | "shared"> & {
  group: string;
  labels: string[];
  /** The operator marked it shared (`runyard runner --shared`): it may take any tenant's runs. */
  shared: boolean;
};

/**
 * What `runners.upsert` takes. Advertised fields replace the stored ones; `status`,
 * `connected_at` and `last_heartbeat_at` are changed only when given (a new runner starts offline).
 */
export type RunnerInput = Pick<RunnerRecord, "id" | "group" | "labels" | "mode" | "capacity" | "hostname"> &
  Partial<
    Pick<
      RunnerRecord,
      | "cpus"
      | "memory"
      | "tenant_id"
      | "version"
      | "status"
      | "connected_at"
      | "last_heartbeat_at"
      | "replica_id"
      | "shared"
      | "isolation"
    >
  > & {
    /**
     * The runner token saying hello. The id is bound to the first token that registers it; while
     * that token exists, an upsert with another token changes nothing and returns undefined.
     */
    token_id?: string;
  };

function toRunnerRecord(row: Selectable<RunnersTable>): RunnerRecord {
  const { group_name, labels, shared, ...rest } = row;
  return { ...rest, group: group_name, labels: decodeJson<string[]>(labels), shared: shared === 1 };
}

/** The runner daemons, as they advertised themselves, and whether they are connected. */
export interface RunnersRepo {
  /**
   * Stores a runner's advertised info (see `RunnerInput`) and returns the record; undefined when
   * the id belongs to another runner token that still exists.
   */
  upsert(input: RunnerInput): Promise<RunnerRecord | undefined>;
  /**
   * Online sets `connected_at` and `last_heartbeat_at` to `at`; offline keeps them. With
   * `replicaId`, only while the runner is recorded as connected to that replica (it may have
   * moved to another one since).
   */
  setStatus(
    id: string,
    status: RunnerStatus,
    at: string,
    opts?: { replicaId?: string },
  ): Promise<RunnerRecord | undefined>;
  /** Records a heartbeat; false when the runner is unknown. */
  touch(id: string, at: string): Promise<boolean>;
  /** Runners by id; `tenantId` as in `ListRunsQuery`. */
  list(query?: { tenantId?: string | null; status?: RunnerStatus }): Promise<RunnerRecord[]>;
  /** One runner, or undefined. */
  get(id: string): Promise<RunnerRecord | undefined>;
  /**
   * Gives the runner id to `tokenId` before its old token is revoked: a revoked token frees its
   * ids for any runner token, so `runyard up` hands its local runner's to the new token first.
   */
  handOver(id: string, tokenId: string): Promise<void>;
}

export function runnersRepo(ctx: StoreContext): RunnersRepo {
  return {
    async upsert(input) {
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
      if (input.last_heartbeat_at !== undefined)
        state.last_heartbeat_at = isoTimeOrNull(input.last_heartbeat_at);
      if (input.token_id !== undefined) state.token_id = input.token_id;
      if (input.replica_id !== undefined) state.replica_id = input.replica_id;
      // One statement, so two runners racing for a free id cannot both win it.
      const row = await ctx.db
        .insertInto("runners")
        .values({ id: input.id, ...advertised, status: "offline", ...state })
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
    },
    async setStatus(id, status, at, opts = {}) {
      const when = isoTime(at);
      let update = ctx.db
        .updateTable("runners")
        .set(status === "online" ? { status, connected_at: when, last_heartbeat_at: when } : { status })
        .where("id", "=", id);
      if (opts.replicaId !== undefined) update = update.where("replica_id", "=", opts.replicaId);
      const row = await update.returningAll().executeTakeFirst();
      return row && toRunnerRecord(row);
    },
    async touch(id, at) {
      const result = await ctx.db
        .updateTable("runners")
        .set({ last_heartbeat_at: isoTime(at) })
        .where("id", "=", id)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },
    async list(query = {}) {
      let select = ctx.db.selectFrom("runners").selectAll();
      if (query.tenantId === null) select = select.where("tenant_id", "is", null);
      else if (query.tenantId !== undefined) select = select.where("tenant_id", "=", query.tenantId);
      if (query.status !== undefined) select = select.where("status", "=", query.status);
      const rows = await select.orderBy("id").execute();
      return rows.map(toRunnerRecord);
    },
    async get(id) {
      const row = await ctx.db.selectFrom("runners").selectAll().where("id", "=", id).executeTakeFirst();
      return row && toRunnerRecord(row);
    },
    handOver: async (id, tokenId) => {
      await ctx.db.updateTable("runners").set({ token_id: tokenId }).where("id", "=", id).execute();
    },
  };
}
