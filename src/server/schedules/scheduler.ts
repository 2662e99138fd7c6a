import { RunyardError } from "../../core/errors.js";
import { newRunId } from "../../core/ids.js";
import type { Logger } from "../../core/logger.js";
import type { ScheduleRecord, Store } from "../../store/index.js";
import { catchUpAllLimit, catchUpWindowMs, nextTick, ticksBetween } from "../../workflow/schedule.js";
import { makerRemoved } from "../acting-for.js";
import type { RunService } from "../runs/run-service.js";
import type { SavedWorkflows } from "../runs/saved-workflows.js";

/** What the scheduler counts per tick (`runyard_schedule_ticks_total{outcome}`). */
export const tickCountOutcomes = ["fired", "skipped", "missed", "failed"] as const;
export type TickCountOutcome = (typeof tickCountOutcomes)[number];

/**
 * `catch_up: none` fires a tick no later than this (RUNYARD_SCHEDULE_ON_TIME_MS); one found later (every
 * server down, or the leader died at it and the next took over late) is recorded missed.
 */
export const defaultOnTimeMs = 5_000;
/** How far before the catch-up window missed ticks are still counted one by one. */
const missedCountedMs = 7 * 24 * 3600 * 1000;
/** A tick claimed `started` whose run is not stored this long after is started by the leader. */
const unstartedAfterMs = 5_000;
/** How far back the leader looks for such ticks. */
const unstartedWithinMs = 3_600_000;
/** Schedules handled at once in a pass: ticks of many schedules at one second all fire in time. */
const parallelSchedules = 16;
/** The longest the timer sleeps: a schedule saved on another replica is seen within this. */
const maxSleepMs = 1_000;
/** How long a cancel_previous tick waits for the queued run it replaces to end before it starts anyway. */
const replaceWaitMs = 900;

export interface SchedulerDeps {
  store: Pick<Store, "schedules" | "savedWorkflows" | "tokens" | "users" | "runs">;
  workflows: Pick<SavedWorkflows, "startRun" | "triggerOwner">;
  runs: Pick<RunService, "cancel">;
  logger: Logger;
  /** Whether this replica leads the fleet: only the leader fires ticks. */
  isLeader: () => boolean;
  /** Throws QUOTA_EXCEEDED past a run quota of `tenantId` or `ownerId`: the tick is skipped. Unset: none. */
  admitRun?: (tenantId: string | null, ownerId: string | null) => Promise<void>;
  /**
   * A tenant's schedules start at most this many runs an hour; a tick past it is skipped (saves are
   * refused first; this catches schedules saved under a higher cap).
   */
  maxRunsPerHour?: number;
  /** How late a `catch_up: none` tick may still fire; default `defaultOnTimeMs`. */
  onTimeMs?: number;
  now?: () => Date;
}

/**
 * Fires saved workflows' schedule ticks on the fleet's leader. A tick fires once fleet-wide as a row
 * (schedule, tick time) inserted before its run: the replica whose insert went in starts the run under
 * the row's id; any other, even one that also thinks it leads, does nothing. If it dies before storing
 * the run, the leader starts it under the same id, and a run id exists once.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastLostCheck = 0;
  private readonly counts: Record<TickCountOutcome, number> = { fired: 0, skipped: 0, missed: 0, failed: 0 };
  private readonly now: () => Date;

  constructor(private readonly deps: SchedulerDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Ticks this replica handled since it started, by outcome. */
  ticks(): Readonly<Record<TickCountOutcome, number>> {
    return this.counts;
  }

  /** A schedule changed here (a save): look again now rather than at the next round. */
  wake(): void {
    if (this.deps.isLeader()) void this.round();
  }

  /** The leader's round: fires what is due, then sleeps until the next tick (or a second). */
  round(): Promise<void> {
    this.pass = this.pass
      .then(() => this.fireDue())
      .catch((error: unknown) => this.deps.logger.error({ err: error }, "schedule pass failed"));
    return this.pass;
  }

  private async fireDue(): Promise<void> {
    if (this.stopped || !this.deps.isLeader()) return this.disarm();
    const now = this.now();
    const due = await this.deps.store.schedules.due(now);
    for (let i = 0; i < due.length; i += parallelSchedules) {
      await Promise.all(
        due
          .slice(i, i + parallelSchedules)
          .map((schedule) =>
            this.handle(schedule, now).catch((error: unknown) =>
              this.deps.logger.error({ err: error, schedule: schedule.id }, "schedule tick failed"),
            ),
          ),
      );
    }
    if (now.getTime() - this.lastLostCheck >= unstartedAfterMs) {
      this.lastLostCheck = now.getTime();
      await this.startUnstarted(now);
    }
    await this.arm();
  }

  /** Sleeps until the next tick of any schedule, at most `maxSleepMs`. */
  private async arm(): Promise<void> {
    this.disarm();
    if (this.stopped) return;
    const next = await this.deps.store.schedules.nextDue();
    const wait = next === null ? maxSleepMs : Math.min(maxSleepMs, Date.parse(next) - this.now().getTime());
    this.timer = setTimeout(() => void this.round(), Math.max(0, wait));
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One schedule's ticks since its last: fires what `catch_up` says, the rest missed, moves past `now`. */
  private async handle(schedule: ScheduleRecord, now: Date): Promise<void> {
    const after = new Date(schedule.last_tick_at ?? schedule.armed_at);
    const floor = new Date(now.getTime() - catchUpWindowMs);
    const spec = { cron: schedule.cron, timezone: schedule.timezone };
    // Ticks older than the catch-up window are missed whatever catch_up says; counted up to a bound (a
    // schedule off for months is not walked second by second).
    const counted = new Date(Math.max(after.getTime(), floor.getTime() - missedCountedMs));
    const older = counted < floor ? ticksBetween(spec, counted, floor, 0).more : 0;
    const { ticks, more } = ticksBetween(spec, after < floor ? floor : after, now, catchUpAllLimit);
    const latest = ticks.at(-1);
    const fire =
      schedule.catch_up === "all"
        ? ticks
        : schedule.catch_up === "latest" ||
            (latest && now.getTime() - latest.getTime() <= (this.deps.onTimeMs ?? defaultOnTimeMs))
          ? ticks.slice(-1)
          : [];
    // Each missed tick of the window is a row of its own, inserted like a fired one, so a tick
    // another replica fired is never also counted missed; older ones make one row for the span.
    for (const tick of ticks.filter((t) => !fire.includes(t))) {
      await this.recordMissed(schedule, tick, 1, tick.toISOString());
    }
    if (older + more > 0) {
      const before = new Date((ticks[0] ?? now).getTime() - 1);
      await this.recordMissed(schedule, before, older + more, `before ${before.toISOString()}`);
    }
    for (const tick of fire) await this.fire(schedule, tick);
    const handled = latest ?? (older > 0 ? floor : after);
    await this.deps.store.schedules.advance(
      schedule.id,
      handled.toISOString(),
      nextTick(spec, now)?.toISOString() ?? null,
    );
  }

  private async recordMissed(schedule: ScheduleRecord, at: Date, count: number, when: string): Promise<void> {
    const claimed = await this.deps.store.schedules.claimTick({
      schedule_id: schedule.id,
      tick_at: at.toISOString(),
      outcome: "missed",
      run_id: null,
      detail: `${count === 1 ? "the tick was" : `${count} ticks were`} missed ${when}: no server ran it in time (catch_up: ${schedule.catch_up})`,
      ticks: count,
    });
    if (claimed) this.counts.missed += count;
  }

  /** One tick: skipped for overlap, or claimed and its run started (after a cancel, if asked). */
  private async fire(schedule: ScheduleRecord, tick: Date): Promise<void> {
    const { store } = this.deps;
    const owner = await this.ownerOf(schedule);
    if (await makerRemoved(store, owner)) {
      // As a removed user's hooks: a run of nobody's would be held to no one's limits.
      await this.skip(
        schedule,
        tick,
        `the schedule's owner (who made version ${schedule.workflow_version} of ${schedule.workflow_name} live) was removed, so the tick started no run; a tenant admin takes the schedule over by saving the workflow again (its new version, and so its schedules, become theirs)`,
      );
      return;
    }
    const running = await store.schedules.activeRuns(schedule.id);
    const previous = running.at(-1);
    if (previous !== undefined && schedule.overlap === "skip") {
      await this.skip(
        schedule,
        tick,
        `run ${previous} of this schedule is still ${running.length > 1 ? "going (with others)" : "going"} (overlap: skip)`,
        previous,
      );
      return;
    }
    const cap = this.deps.maxRunsPerHour;
    if (cap !== undefined) {
      const started = await store.schedules.startedSince(
        schedule.tenant_id,
        new Date(tick.getTime() - 3_600_000),
      );
      if (started >= cap) {
        const whose = schedule.tenant_id === null ? "outside any tenant" : `of tenant ${schedule.tenant_id}`;
        await this.skip(
          schedule,
          tick,
          `the schedules ${whose} started ${started} runs in the hour before this tick, the most this server allows (RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR=${cap})`,
        );
        return;
      }
    }
    // A run that replaces the schedule's own (cancel_previous) adds none to its owner's count.
    const replaces = schedule.overlap === "cancel_previous" && running.length > 0;
    const overQuota = replaces ? undefined : await this.quotaRefusal(schedule, owner);
    if (overQuota !== undefined) {
      await this.skip(schedule, tick, overQuota);
      return;
    }
    const runId = newRunId();
    const claimed = await store.schedules.claimTick({
      schedule_id: schedule.id,
      tick_at: tick.toISOString(),
      outcome: "started",
      run_id: runId,
      detail: null,
    });
    if (!claimed) return;
    this.counts.fired += 1;
    if (schedule.overlap === "cancel_previous") {
      // A queued run ends at once (no process), so its owner never has both queued. A running one is not
      // waited for: its step may trap SIGTERM, and must not hold the ticks of other schedules.
      for (const id of running) {
        const queued = (await store.runs.get(id))?.status === "queued";
        await this.deps.runs
          .cancel(id, queued ? replaceWaitMs : 0)
          .catch((error: unknown) =>
            this.deps.logger.warn({ err: error, runId: id }, "cannot cancel the schedule's previous run"),
          );
      }
    }
    await this.start(schedule, tick.toISOString(), runId);
  }

  /** Records the tick as skipped, saying why (once, whichever replica claims it). */
  private async skip(schedule: ScheduleRecord, tick: Date, detail: string, runId: string | null = null) {
    const claimed = await this.deps.store.schedules.claimTick({
      schedule_id: schedule.id,
      tick_at: tick.toISOString(),
      outcome: "skipped",
      run_id: runId,
      detail,
    });
    if (claimed) this.counts.skipped += 1;
  }

  /** Who a tick's run is triggered by: the schedule's owner, else its version's saver. */
  private async ownerOf(schedule: ScheduleRecord): Promise<string | null> {
    if (schedule.owner !== null) return schedule.owner;
    const saved = await this.deps.store.savedWorkflows.get(
      schedule.tenant_id,
      schedule.workflow_name,
      schedule.workflow_version,
    );
    return saved?.created_by ?? null;
  }

  /** Why a tick's run would pass a run quota of the schedule's tenant or owner (whose it is), if it would. */
  private async quotaRefusal(schedule: ScheduleRecord, owner: string | null): Promise<string | undefined> {
    const { admitRun } = this.deps;
    if (!admitRun) return undefined;
    try {
      await admitRun(schedule.tenant_id, owner);
      return undefined;
    } catch (error) {
      if (!(error instanceof RunyardError) || error.code !== "QUOTA_EXCEEDED") throw error;
      return `${error.message}, so the tick started no run (a run quota of the schedule's tenant or owner). ${error.hint ?? ""}`.trim();
    }
  }

  /** Starts a claimed tick's run under the id its row names; a failure is recorded on the row. */
  private async start(schedule: ScheduleRecord, tickAt: string, runId: string): Promise<void> {
    const { store, workflows, logger } = this.deps;
    try {
      // The schedule's own version (live when armed): a newer one waits for promotion, lending no rights.
      const saved = await store.savedWorkflows.get(
        schedule.tenant_id,
        schedule.workflow_name,
        schedule.workflow_version,
      );
      if (!saved) return;
      await workflows.startRun({
        tenantId: schedule.tenant_id,
        name: schedule.workflow_name,
        version: schedule.workflow_version,
        vars: {},
        trigger: "schedule",
        ref: schedule.id,
        runId,
        // The run has the lesser rights of the schedule's owner and the version's saver (startRun).
        owner: await workflows.triggerOwner(schedule.owner ?? saved.created_by),
      });
      logger.info(
        { schedule: schedule.id, workflow: schedule.workflow_name, tick: tickAt, runId },
        "schedule tick fired",
      );
    } catch (error) {
      // The run exists: another replica started this tick's run (after this one stalled).
      if (error instanceof RunyardError && error.code === "CONFLICT") return;
      this.counts.failed += 1;
      const message = error instanceof Error ? error.message : String(error);
      logger.warn(
        { err: error, schedule: schedule.id, tick: tickAt },
        "schedule tick could not start its run",
      );
      await store.schedules.settleTick(schedule.id, tickAt, {
        outcome: "failed",
        detail: message.slice(0, 2000),
      });
    }
  }

  /** Ticks claimed by a replica that died before it stored their run: their runs start here. */
  private async startUnstarted(now: Date): Promise<void> {
    const { store } = this.deps;
    const lost = await store.schedules.unstartedTicks(
      new Date(now.getTime() - unstartedAfterMs),
      new Date(now.getTime() - unstartedWithinMs),
    );
    for (const tick of lost) {
      const schedule = await store.schedules.get(tick.schedule_id);
      if (!schedule || tick.run_id === null) continue;
      this.deps.logger.warn(
        { schedule: schedule.id, tick: tick.tick_at, runId: tick.run_id },
        "a tick was claimed by a replica that stopped before its run was stored; starting it",
      );
      await this.start(schedule, tick.tick_at, tick.run_id);
    }
  }

  /** Stops the timer and waits for a pass under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.disarm();
    await this.pass;
  }
}
