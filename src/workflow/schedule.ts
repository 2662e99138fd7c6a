/**
 * Cron schedules of saved workflows: when their ticks fall. The cron arithmetic is croner's
 * (time zones and daylight saving included); this module only bounds how it is asked.
 */
import { Cron } from "croner";

export const scheduleOverlaps = ["skip", "queue", "cancel_previous"] as const;
export type ScheduleOverlap = (typeof scheduleOverlaps)[number];
export const scheduleCatchUps = ["none", "latest", "all"] as const;
export type ScheduleCatchUp = (typeof scheduleCatchUps)[number];

/** One `schedule:` entry. */
export interface ScheduleSpec {
  /** 5 fields (minute hour day month weekday), or 6 with seconds first. */
  cron: string;
  /** An IANA time zone; default UTC. */
  timezone: string;
  /** A tick while the schedule's previous run still runs: skip it (default), queue, or cancel that run. */
  overlap: ScheduleOverlap;
  /** Ticks missed while no server ran: none, the latest within a day (default), or all of them. */
  catchUp: ScheduleCatchUp;
}

/** Said when a workflow with `schedule:` is run as a file rather than saved. */
export const scheduleIgnoredNotice =
  "schedule: applies to saved workflows only (`runyard workflow save FILE` starts it); this run runs once, now";

/** How far back catch-up reaches: ticks older than this are missed whatever `catch_up` says. */
export const catchUpWindowMs = 24 * 3600 * 1000;
/** The most ticks `catch_up: all` fires at once; older ones are recorded missed. */
export const catchUpAllLimit = 100;

function cronOf(spec: Pick<ScheduleSpec, "cron" | "timezone">): Cron {
  return new Cron(spec.cron, { paused: true, timezone: spec.timezone, mode: "5-or-6-parts" });
}

/** Why a cron expression is not one, in croner's words; undefined when it is fine. */
export function cronProblem(cron: string): string | undefined {
  try {
    const parsed = new Cron(cron, { paused: true, mode: "5-or-6-parts" });
    if (parsed.nextRun() === null) return "it never fires";
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return message.replace(/^CronPattern: /, "");
  }
}

/** Whether the runtime knows the IANA time zone `name`. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Every IANA time zone the runtime knows, for did-you-mean hints. */
export function timeZones(): readonly string[] {
  return [...Intl.supportedValuesOf("timeZone"), "UTC"];
}

/** One cron's ticks in turn; building a cron costs more than a tick, so a long walk reuses one. */
export function tickWalker(spec: Pick<ScheduleSpec, "cron" | "timezone">): (after: Date) => Date | null {
  const cron = cronOf(spec);
  return (after) => cron.nextRun(after);
}

/** The first tick strictly after `after`; null when the cron has no more. */
export function nextTick(spec: Pick<ScheduleSpec, "cron" | "timezone">, after: Date): Date | null {
  return cronOf(spec).nextRun(after);
}

/**
 * How many ticks one call walks one by one. A schedule firing every second, off for a week, has
 * 600,000 ticks; walking them all blocks the server's event loop for half a minute.
 */
const walkedTicksLimit = 2000;

/**
 * The newest `limit` ticks in (`after`, `until`], oldest first (catch-up fires the newest); `more`
 * counts those left out. Past `walkedTicksLimit` they are walked back from `until` and `more` is
 * estimated from their rate (exact for a steady cron such as every second).
 */
export function ticksBetween(
  spec: Pick<ScheduleSpec, "cron" | "timezone">,
  after: Date,
  until: Date,
  limit: number,
): { ticks: Date[]; more: number } {
  const cron = cronOf(spec);
  const ticks: Date[] = [];
  let more = 0;
  let walked = 0;
  let first: Date | null = null;
  for (let at = cron.nextRun(after); at !== null && at.getTime() <= until.getTime(); at = cron.nextRun(at)) {
    first ??= at;
    walked += 1;
    ticks.push(at);
    if (ticks.length > limit) {
      ticks.shift();
      more += 1;
    }
    if (walked >= walkedTicksLimit && first !== null) {
      return newestTicks(cron, until, limit, { first, last: at, walked });
    }
  }
  return { ticks, more };
}

/** The dense case of `ticksBetween`: the newest `limit` ticks exactly, how many before them estimated. */
function newestTicks(
  cron: Cron,
  until: Date,
  limit: number,
  sample: { first: Date; last: Date; walked: number },
): { ticks: Date[]; more: number } {
  // previousRuns takes a tick in the reference's own second: step past `until`, then keep <= until.
  const ticks = cron
    .previousRuns(limit + 1, new Date(until.getTime() + 1))
    .filter((tick) => tick.getTime() <= until.getTime() && tick.getTime() > sample.last.getTime())
    .slice(0, limit)
    .reverse();
  const spacing = (sample.last.getTime() - sample.first.getTime()) / Math.max(1, sample.walked - 1);
  // Ticks after the sample and before the newest found (all up to `until` when none is kept).
  const oldest = ticks[0];
  const span = (oldest ?? until).getTime() - sample.last.getTime();
  const between = spacing > 0 ? Math.max(0, Math.round(span / spacing) - (oldest ? 1 : 0)) : 0;
  return { ticks, more: sample.walked + between };
}
