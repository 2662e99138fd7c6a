import { sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { RunRecord } from "./run-records.js";
import { toRunRecord } from "./runs.js";
import type { ReplicasTable } from "./schema.js";

export type ReplicaRecord = ReplicasTable;

/** What a replica says of itself at start and in each heartbeat. */
export type ReplicaInput = Pick<ReplicaRecord, "id" | "hostname" | "url" | "version" | "schema_level">;

/** The server replicas on one database, and which of them carries each run. */
export interface FleetRepo {
  /**
   * Inserts or refreshes a replica's row, `seen_at` now. With `ifPresent` only refreshes, and
   * answers false when the row is gone (the fleet presumed the replica dead).
   */
  heartbeat(input: ReplicaInput, opts?: { ifPresent?: boolean }): Promise<boolean>;
  /**
   * Writes a starting replica's row, unless a newer runyard made the database unwritable for its
   * schema level (STORE_TOO_NEW). On PostgreSQL both happen under a share lock of the writers
   * row, which a migration's finish holds for update: a finish either sees this row (and waits for
   * this replica to go) or has raised the writers level before this replica reads it.
   */
  join(input: ReplicaInput): Promise<void>;
  /** Every replica row, live or presumed dead. */
  listReplicas(): Promise<ReplicaRecord[]>;
  /**
   * Forgets replicas (those not seen since `seenBefore`, all but `except`, or `only` one, while
   * its `seen_at` is still `seenAt`), marks their runners offline, and returns their ids.
   */
  removeReplicas(opts: {
    seenBefore?: string;
    seenAt?: string;
    except?: string;
    only?: string;
  }): Promise<string[]>;
  /**
   * Marks queued and running runs as carried by `replicaId` and returns them, oldest first: those
   * no live replica carries (their replica has no row, or none is named), and with `own` also those
   * already named for `replicaId` (a restart of the same replica). One statement per run, guarded
   * by what it read, so two adopters never take the same run.
   */
  adoptRuns(replicaId: string, opts?: { own?: boolean }): Promise<RunRecord[]>;
  /** The replica carrying a run (null: none), or undefined for an unknown run. */
  runReplica(runId: string): Promise<string | null | undefined>;
  /** Records a cancel request for a queued or running run; false when it has ended or is unknown. */
  requestRunCancel(runId: string): Promise<boolean>;
  /** True when someone asked to cancel the run. */
  cancelRequested(runId: string): Promise<boolean>;
  /** Queued and running runs `replicaId` carries that someone asked to cancel (a lost `cancel-run`). */
  cancelRequestedRuns(replicaId: string): Promise<string[]>;
}

/** `heartbeats`: the context of the heartbeat's own connection, where the store has one. */
export function fleetRepo(ctx: StoreContext, heartbeats: StoreContext = ctx): FleetRepo {
  return {
    async heartbeat(input, opts = {}) {
      const now = isoTime(heartbeats.now());
      if (opts.ifPresent) {
        const result = await heartbeats.db
          .updateTable("replicas")
          .set({ seen_at: now, url: input.url })
          .where("id", "=", input.id)
          .executeTakeFirst();
        return result.numUpdatedRows > 0n;
      }
      const row = { ...input, started_at: now, seen_at: now };
      await heartbeats.db
        .insertInto("replicas")
        .values(row)
        .onConflict((conflict) => conflict.column("id").doUpdateSet(row))
        .execute();
      return true;
    },
    async join(input) {
      const now = isoTime(heartbeats.now());
      const row = { ...input, started_at: now, seen_at: now };
      await heartbeats.db.transaction().execute(async (trx) => {
        const lock = heartbeats.dialect.name === "postgres" ? sql`for share` : sql``;
        const { rows } = await sql<{ writers_from: number | string; writers_version: string }>`
          select writers_from, writers_version from runyard_migration_state where id = 1 ${lock}`.execute(
          trx,
        );
        const writers = rows[0];
        if (writers && Number(writers.writers_from) > (input.schema_level ?? 0)) {
          throw new RunyardError(
            "STORE_TOO_NEW",
            `a newer runyard migrated the database as this replica started: it is written by ${writers.writers_version} or later, and this replica (schema level ${input.schema_level}) may no longer write it: upgrade this replica`,
          );
        }
        await trx
          .insertInto("replicas")
          .values(row)
          .onConflict((conflict) => conflict.column("id").doUpdateSet(row))
          .execute();
      });
    },
    async listReplicas() {
      return ctx.db.selectFrom("replicas").selectAll().orderBy("id").execute();
    },
    async removeReplicas(opts) {
      let remove = ctx.db.deleteFrom("replicas");
      if (opts.only !== undefined) remove = remove.where("id", "=", opts.only);
      if (opts.seenAt !== undefined) remove = remove.where("seen_at", "=", opts.seenAt);
      if (opts.seenBefore !== undefined) remove = remove.where("seen_at", "<", isoTime(opts.seenBefore));
      if (opts.except !== undefined) remove = remove.where("id", "!=", opts.except);
      const gone = (await remove.returning("id").execute()).map((row) => row.id);
      if (gone.length > 0) {
        await ctx.db
          .updateTable("runners")
          .set({ status: "offline" })
          .where("replica_id", "in", gone)
          .where("status", "=", "online")
          .execute();
      }
      return gone.sort();
    },
    async adoptRuns(replicaId, opts = {}) {
      const rows = await ctx.db
        .updateTable("runs")
        .set({ replica_id: replicaId })
        .where("status", "in", ["queued", "running"])
        .where((eb) => {
          const orphan = eb.or([
            eb("replica_id", "is", null),
            eb.not(
              eb.exists(
                eb
                  .selectFrom("replicas")
                  .select("replicas.id")
                  .whereRef("replicas.id", "=", "runs.replica_id"),
              ),
            ),
          ]);
          return opts.own ? eb.or([orphan, eb("replica_id", "=", replicaId)]) : orphan;
        })
        .returningAll()
        .execute();
      return rows
        .map((row) => toRunRecord(ctx, row))
        .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
    },
    async runReplica(runId) {
      const row = await ctx.db
        .selectFrom("runs")
        .select("replica_id")
        .where("id", "=", runId)
        .executeTakeFirst();
      return row ? row.replica_id : undefined;
    },
    async requestRunCancel(runId) {
      const result = await ctx.db
        .updateTable("runs")
        .set({ cancel_requested_at: isoTime(ctx.now()) })
        .where("id", "=", runId)
        .where("status", "in", ["queued", "running"])
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },
    async cancelRequested(runId) {
      const row = await ctx.db
        .selectFrom("runs")
        .select("cancel_requested_at")
        .where("id", "=", runId)
        .executeTakeFirst();
      return Boolean(row?.cancel_requested_at);
    },
    async cancelRequestedRuns(replicaId) {
      const rows = await ctx.db
        .selectFrom("runs")
        .select("id")
        .where("replica_id", "=", replicaId)
        .where("status", "in", ["queued", "running"])
        .where("cancel_requested_at", "is not", null)
        .execute();
      return rows.map((row) => row.id);
    },
  };
}
