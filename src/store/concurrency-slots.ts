import { sql } from "kysely";
import type { RunStatus } from "../core/events.js";
import { isoTime, tenantKey } from "./columns.js";
import type { StoreContext } from "./dialect.js";

/** A run of a concurrency group as the slot sees it. */
export interface GroupRun {
  run_id: string;
  status: RunStatus;
}

/** The run a waiting one is behind: the slot's holder, else the first run queued before it. */
export interface SlotWait {
  /** `holds`: it holds the slot; `ahead`: the slot is free but it was queued first. */
  why: "holds" | "ahead";
  run: GroupRun;
}

/** A run wanting its group's slot: its id, tenant, group and when it was queued. */
export interface SlotClaim {
  run_id: string;
  tenant_id: string | null;
  group: string;
  created_at: string;
}

const live: readonly RunStatus[] = ["queued", "running"];

/** The group's runs in `statuses` queued before the claimant, oldest first. */
async function groupRuns(
  ctx: StoreContext,
  claim: SlotClaim,
  statuses: readonly RunStatus[] = live,
): Promise<GroupRun[]> {
  const createdAt = isoTime(claim.created_at);
  return ctx.db
    .selectFrom("runs")
    .select(["id as run_id", "status"])
    .where("tenant_id", claim.tenant_id === null ? "is" : "=", claim.tenant_id)
    .where("concurrency_group", "=", claim.group)
    .where("status", "in", statuses)
    .where((eb) =>
      eb.or([
        eb("created_at", "<", createdAt),
        eb.and([eb("created_at", "=", createdAt), eb("id", "<", claim.run_id)]),
      ]),
    )
    .orderBy("created_at")
    .orderBy("id")
    .execute();
}

/**
 * Concurrency groups: per tenant and group, the one run that may run now. The slot is a row tied
 * to its run's final state, not to a process, so it holds across replicas and is never lost
 * with one.
 */
export interface ConcurrencySlotsRepo {
  /**
   * Takes the group's slot for the run, in one statement: a new row, or the row of a holder whose
   * run has ended (any final status frees it, whoever wrote that status), and only when no run of
   * the group queued before this one still waits (submit order). On PostgreSQL the unique key
   * makes concurrent takers of one group wait for each other, and the loser finds the winner
   * holding it; SQLite runs one writer at a time. True when the run holds the slot now.
   */
  take(claim: SlotClaim): Promise<boolean>;
  /** Frees the slot a run holds; false when it held none. */
  release(runId: string): Promise<boolean>;
  /** Who the claimant waits for (holder, else the first queued before it); undefined: no one. */
  waitingFor(claim: SlotClaim): Promise<SlotWait | undefined>;
  /** The group's queued and running runs submitted before the claimant, oldest first. */
  runsBefore(claim: SlotClaim): Promise<GroupRun[]>;
}

export function concurrencySlotsRepo(ctx: StoreContext): ConcurrencySlotsRepo {
  return {
    async take(claim) {
      const tenant = tenantKey(claim.tenant_id);
      const held = await ctx.db
        .selectFrom("concurrency_slots")
        .select("run_id")
        .where("tenant_id", "=", tenant)
        .where("group_name", "=", claim.group)
        .executeTakeFirst();
      // Carried on after a restart or an adoption: it took the slot before.
      if (held?.run_id === claim.run_id) return true;
      const createdAt = isoTime(claim.created_at);
      const taken = await sql<{ run_id: string }>`
        insert into concurrency_slots (tenant_id, group_name, run_id, taken_at)
        select cast(${tenant} as text), cast(${claim.group} as text), cast(${claim.run_id} as text),
          cast(${isoTime(ctx.now())} as text)
        where not exists (
          select 1 from runs ahead
          where coalesce(ahead.tenant_id, '') = ${tenant} and ahead.concurrency_group = ${claim.group}
            and ahead.status = 'queued'
            and (ahead.created_at < ${createdAt} or (ahead.created_at = ${createdAt} and ahead.id < ${claim.run_id})))
        on conflict (tenant_id, group_name) do update
          set run_id = excluded.run_id, taken_at = excluded.taken_at
          where not exists (
            select 1 from runs holder
            where holder.id = concurrency_slots.run_id and holder.status in ('queued', 'running'))
        returning run_id`.execute(ctx.db);
      return taken.rows[0]?.run_id === claim.run_id;
    },
    async release(runId) {
      const result = await ctx.db
        .deleteFrom("concurrency_slots")
        .where("run_id", "=", runId)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
    async waitingFor(claim) {
      const tenant = tenantKey(claim.tenant_id);
      const holder = await ctx.db
        .selectFrom("concurrency_slots")
        .innerJoin("runs", "runs.id", "concurrency_slots.run_id")
        .select(["runs.id as run_id", "runs.status"])
        .where("concurrency_slots.tenant_id", "=", tenant)
        .where("concurrency_slots.group_name", "=", claim.group)
        .where("runs.status", "in", live)
        .executeTakeFirst();
      if (holder && holder.run_id !== claim.run_id) return { why: "holds", run: holder };
      if (holder) return undefined;
      const [first] = await groupRuns(ctx, claim, ["queued"]);
      return first ? { why: "ahead", run: first } : undefined;
    },
    runsBefore: (claim) => groupRuns(ctx, claim),
  };
}
