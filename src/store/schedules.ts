import type { Selectable } from "kysely";
import { newId } from "../core/ids.js";
import { int, isoTime, tenantKey, tenantOf } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import { preparedStatement } from "./prepared.js";
import type { SchedulesTable, ScheduleTicksTable } from "./schema.js";

/** What happens when a tick comes while the schedule's previous run still runs. */
export type ScheduleOverlap = "skip" | "queue" | "cancel_previous";
/** What happens to ticks that came while no server ran. */
export type ScheduleCatchUp = "none" | "latest" | "all";
/**
 * What a tick did: started a run, skipped it (overlap, or the tenant's scheduled runs an hour),
 * missed it (no server ran), or failed to start one.
 */
export type TickOutcome = "started" | "skipped" | "missed" | "failed";

/** One `schedule:` entry of a saved workflow, as the version's save stores it. */
export interface NewSchedule {
  cron: string;
  timezone: string;
  overlap: ScheduleOverlap;
  catch_up: ScheduleCatchUp;
  /** Ticks after this instant are the schedule's: the save's time. */
  armed_at: string;
  /** The first tick after `armed_at`; null when the cron has none. */
  next_tick_at: string | null;
}

/** A schedule as stored. */
export type ScheduleRecord = Omit<Selectable<SchedulesTable>, "tenant_id" | "overlap" | "catch_up"> & {
  tenant_id: string | null;
  overlap: ScheduleOverlap;
  catch_up: ScheduleCatchUp;
};

/** One handled tick of a schedule. */
export type TickRecord = Omit<Selectable<ScheduleTicksTable>, "outcome"> & { outcome: TickOutcome };

/** A schedule and its last tick, as `schedule list` shows it. */
export interface ScheduleWithLastTick extends ScheduleRecord {
  last_tick: TickRecord | null;
}

function toSchedule(row: Selectable<SchedulesTable>): ScheduleRecord {
  return {
    ...row,
    tenant_id: tenantOf(row.tenant_id),
    overlap: row.overlap as ScheduleOverlap,
    catch_up: row.catch_up as ScheduleCatchUp,
  };
}

function toTick(row: Selectable<ScheduleTicksTable>): TickRecord {
  return { ...row, outcome: row.outcome as TickOutcome, ticks: int(row.ticks) };
}

/**
 * Gives a saved workflow's name the schedules of its newly promoted version, owned by whoever
 * promoted it (inside the promotion's transaction).
 * An entry whose cron and time zone did not change keeps its id and where it stands, so a save
 * never makes a tick fire twice nor forgets one; a changed one starts afresh from the save.
 */
export async function replaceSchedules(
  ctx: StoreContext,
  tenant: string,
  name: string,
  version: number,
  schedules: readonly NewSchedule[],
  owner: string | null,
): Promise<void> {
  const existing = await ctx.db
    .selectFrom("schedules")
    .selectAll()
    .where("tenant_id", "=", tenant)
    .where("workflow_name", "=", name)
    .execute();
  const gone = existing.filter((row) => int(row.position) >= schedules.length).map((row) => row.id);
  if (gone.length > 0) {
    await ctx.db.deleteFrom("schedule_ticks").where("schedule_id", "in", gone).execute();
    await ctx.db.deleteFrom("schedules").where("id", "in", gone).execute();
  }
  for (const [position, schedule] of schedules.entries()) {
    const known = existing.find((row) => int(row.position) === position);
    const kept = known && known.cron === schedule.cron && known.timezone === schedule.timezone;
    const fields = {
      workflow_version: version,
      cron: schedule.cron,
      timezone: schedule.timezone,
      overlap: schedule.overlap,
      catch_up: schedule.catch_up,
      owner,
    };
    const afresh = {
      ...fields,
      armed_at: isoTime(schedule.armed_at),
      last_tick_at: null,
      next_tick_at: schedule.next_tick_at && isoTime(schedule.next_tick_at),
    };
    if (known) {
      await ctx.db
        .updateTable("schedules")
        .set(kept ? fields : afresh)
        .where("id", "=", known.id)
        .execute();
    } else {
      const row = { id: newId("sch"), tenant_id: tenant, workflow_name: name, position, ...afresh };
      await ctx.db.insertInto("schedules").values(row).execute();
    }
  }
}

/**
 * The schedules of saved workflows and their ticks. A tick is handled by whoever inserts its row
 * (`claimTick`): the row's key is the schedule and the tick's time, so of two replicas that both
 * think they lead, one inserts and the other is told it did not.
 */
export interface SchedulesRepo {
  /** A tenant's schedules (`undefined`: every tenant's), each with its last tick. */
  list(tenantId: string | null | undefined): Promise<ScheduleWithLastTick[]>;
  get(id: string): Promise<ScheduleRecord | undefined>;
  /** Schedules whose next tick is at or before `now`. */
  due(now: Date): Promise<ScheduleRecord[]>;
  /** The earliest next tick of all schedules; null when none is due ever. */
  nextDue(): Promise<string | null>;
  /** Inserts the tick's row; false when it exists (another replica handled the tick). */
  claimTick(tick: Omit<TickRecord, "created_at" | "ticks"> & { ticks?: number }): Promise<boolean>;
  /** Changes what a claimed tick did (its run could not start after all). */
  settleTick(
    scheduleId: string,
    tickAt: string,
    change: { outcome: TickOutcome; detail: string | null },
  ): Promise<void>;
  /** Moves a schedule past `lastTickAt` (never back), with its next tick. */
  advance(id: string, lastTickAt: string, nextTickAt: string | null): Promise<void>;
  /** The queued and running runs a schedule started, oldest first. */
  activeRuns(scheduleId: string): Promise<string[]>;
  /**
   * Ticks claimed as `started` between `since` and `olderThan` whose run was never stored: the
   * replica that claimed them died in between. Their run ids are known, so starting them again
   * can make at most one run.
   */
  unstartedTicks(olderThan: Date, since: Date): Promise<TickRecord[]>;
  /** A schedule's ticks, oldest first. */
  ticks(scheduleId: string): Promise<TickRecord[]>;
  /** How many ticks of a tenant's schedules at or after `since` started a run. */
  startedSince(tenantId: string | null, since: Date): Promise<number>;
  /**
   * Deletes ticks written before `before`, keeping each schedule's newest (`schedule list` shows it);
   * answers how many. Catch-up never reaches back a day, so such a tick is never claimed again.
   */
  pruneTicks(before: string): Promise<number>;
}

/** Schedules whose next tick is due: the leader asks every second, mostly for none. */
const selectDue = preparedStatement((ctx, v: { now: string }) =>
  ctx.db
    .selectFrom("schedules")
    .selectAll()
    .where("next_tick_at", "<=", v.now)
    .orderBy("next_tick_at")
    .compile(),
);

/** The soonest next tick of any schedule: asked after each of the leader's rounds. */
const selectNextDue = preparedStatement((ctx) =>
  ctx.db
    .selectFrom("schedules")
    .select((eb) => eb.fn.min("next_tick_at").as("next"))
    .compile(),
);

/** Ticks claimed to start a run that was never stored: asked every five seconds. */
const selectUnstartedTicks = preparedStatement((ctx, v: { olderThan: string; since: string }) =>
  ctx.db
    .selectFrom("schedule_ticks")
    .leftJoin("runs", "runs.id", "schedule_ticks.run_id")
    .selectAll("schedule_ticks")
    .where("schedule_ticks.outcome", "=", "started")
    .where("runs.id", "is", null)
    .where("schedule_ticks.created_at", "<", v.olderThan)
    .where("schedule_ticks.created_at", ">=", v.since)
    .orderBy("schedule_ticks.tick_at")
    .compile(),
);

export function schedulesRepo(ctx: StoreContext): SchedulesRepo {
  return {
    async list(tenantId) {
      let select = ctx.db
        .selectFrom("schedules")
        .leftJoin("schedule_ticks", (join) =>
          join
            .onRef("schedule_ticks.schedule_id", "=", "schedules.id")
            .onRef("schedule_ticks.tick_at", "=", "schedules.last_tick_at"),
        )
        .selectAll("schedules")
        .select([
          "schedule_ticks.outcome",
          "schedule_ticks.run_id",
          "schedule_ticks.detail",
          "schedule_ticks.ticks",
          "schedule_ticks.created_at as tick_created_at",
        ])
        .orderBy("schedules.tenant_id")
        .orderBy("schedules.workflow_name")
        .orderBy("schedules.position");
      if (tenantId !== undefined) select = select.where("schedules.tenant_id", "=", tenantKey(tenantId));
      const rows = await select.execute();
      return rows.map((row) => {
        const { outcome, run_id, detail, ticks, tick_created_at, ...schedule } = row;
        const record = toSchedule(schedule);
        return {
          ...record,
          last_tick:
            outcome === null || record.last_tick_at === null
              ? null
              : toTick({
                  schedule_id: record.id,
                  tick_at: record.last_tick_at,
                  outcome,
                  run_id,
                  detail,
                  ticks: ticks ?? 1,
                  created_at: tick_created_at ?? record.last_tick_at,
                }),
        };
      });
    },
    async get(id) {
      const row = await ctx.db.selectFrom("schedules").selectAll().where("id", "=", id).executeTakeFirst();
      return row && toSchedule(row);
    },
    async due(now) {
      const { rows } = await selectDue(ctx, { now: isoTime(now) });
      return rows.map(toSchedule);
    },
    async nextDue() {
      const { rows } = await selectNextDue(ctx, {});
      return rows[0]?.next ?? null;
    },
    async claimTick(tick) {
      const result = await ctx.db
        .insertInto("schedule_ticks")
        .values({
          schedule_id: tick.schedule_id,
          tick_at: isoTime(tick.tick_at),
          outcome: tick.outcome,
          run_id: tick.run_id,
          detail: tick.detail,
          ticks: tick.ticks ?? 1,
          created_at: isoTime(ctx.now()),
        })
        .onConflict((conflict) => conflict.columns(["schedule_id", "tick_at"]).doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
    },
    async settleTick(scheduleId, tickAt, change) {
      await ctx.db
        .updateTable("schedule_ticks")
        .set(change)
        .where("schedule_id", "=", scheduleId)
        .where("tick_at", "=", isoTime(tickAt))
        .execute();
    },
    async advance(id, lastTickAt, nextTickAt) {
      const last = isoTime(lastTickAt);
      await ctx.db
        .updateTable("schedules")
        .set({ last_tick_at: last, next_tick_at: nextTickAt && isoTime(nextTickAt) })
        .where("id", "=", id)
        .where((eb) => eb.or([eb("last_tick_at", "is", null), eb("last_tick_at", "<", last)]))
        .execute();
    },
    async activeRuns(scheduleId) {
      const rows = await ctx.db
        .selectFrom("runs")
        .select("id")
        .where("trigger_ref", "=", scheduleId)
        .where("trigger", "=", "schedule")
        .where("status", "in", ["queued", "running"])
        .orderBy("created_at")
        .execute();
      return rows.map((row) => row.id);
    },
    async unstartedTicks(olderThan, since) {
      const { rows } = await selectUnstartedTicks(ctx, {
        olderThan: isoTime(olderThan),
        since: isoTime(since),
      });
      return rows.map(toTick);
    },
    async ticks(scheduleId) {
      const rows = await ctx.db
        .selectFrom("schedule_ticks")
        .selectAll()
        .where("schedule_id", "=", scheduleId)
        .orderBy("tick_at")
        .execute();
      return rows.map(toTick);
    },
    async startedSince(tenantId, since) {
      const row = await ctx.db
        .selectFrom("schedule_ticks")
        .innerJoin("schedules", "schedules.id", "schedule_ticks.schedule_id")
        .select((eb) => eb.fn.countAll<number | string>().as("started"))
        .where("schedules.tenant_id", "=", tenantKey(tenantId))
        .where("schedule_ticks.outcome", "=", "started")
        .where("schedule_ticks.tick_at", ">=", isoTime(since))
        .executeTakeFirst();
      return int(row?.started ?? 0);
    },
    async pruneTicks(before) {
      const result = await ctx.db
        .deleteFrom("schedule_ticks")
        .where("created_at", "<", isoTime(before))
        .where(({ eb, selectFrom }) =>
          eb(
            "tick_at",
            "<",
            selectFrom("schedule_ticks as newest")
              .select(({ fn }) => fn.max("newest.tick_at").as("tick_at"))
              .whereRef("newest.schedule_id", "=", "schedule_ticks.schedule_id"),
          ),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
