/**
 * How hard a workflow's schedules would drive the server, judged at save: a tick is a stored row and a run,
 * so one workflow's entries are judged together (20 once-a-minute entries fire every 3 s), a tenant's runs
 * per hour are bounded. A tick takes tens of microseconds to find, so a judgement walks few ticks per entry.
 */
import { type ScheduleSpec, tickWalker } from "./schedule.js";

const hourMs = 3600 * 1000;
const dayMs = 24 * hourMs;
/** The ticks a gap is judged over, per entry: a cron such as `0,1 * * * *` shows its gap within them. */
const gapTicksPerEntry = 60;
/** The ticks an hour's load is judged over, per entry. */
const loadTicksPerEntry = 100;

type Entry = Pick<ScheduleSpec, "cron" | "timezone">;

/** Up to `limit` ticks of `spec` after `from` and until `until`, and whether more came before `until`. */
function walk(spec: Entry, from: Date, until: number, limit: number): { ticks: number[]; cut: boolean } {
  const next = tickWalker(spec);
  const ticks: number[] = [];
  let at = next(from);
  while (at && at.getTime() <= until) {
    if (ticks.length === limit) return { ticks, cut: true };
    ticks.push(at.getTime());
    at = next(at);
  }
  return { ticks, cut: false };
}

/**
 * The shortest gap in ms between the next few ticks of all `specs`, with its two crons (in `specs` order);
 * undefined under two ticks. Only ticks up to the earliest last tick of an entry cut short are compared,
 * so no entry's later ticks are missed.
 */
export function shortestMergedGap(
  specs: readonly Entry[],
  from: Date,
): { gapMs: number; between: [string, string] } | undefined {
  const ticks: Array<{ at: number; entry: number }> = [];
  let horizon = Number.POSITIVE_INFINITY;
  for (const [entry, spec] of specs.entries()) {
    const walked = walk(spec, from, Number.POSITIVE_INFINITY, gapTicksPerEntry);
    for (const at of walked.ticks) ticks.push({ at, entry });
    const last = walked.ticks.at(-1);
    if (walked.cut && last !== undefined) horizon = Math.min(horizon, last);
  }
  const compared = ticks.filter((tick) => tick.at <= horizon).sort((a, b) => a.at - b.at);
  let shortest: { gapMs: number; between: [string, string] } | undefined;
  for (let i = 1; i < compared.length; i++) {
    const [previous, next] = [compared[i - 1], compared[i]];
    if (!previous || !next) continue;
    const gapMs = next.at - previous.at;
    if (shortest && gapMs >= shortest.gapMs) continue;
    // In the file's order, whichever came first in time.
    const [a, b] = [previous.entry, next.entry].sort((x, y) => x - y);
    shortest = { gapMs, between: [specs[a ?? 0]?.cron ?? "", specs[b ?? 0]?.cron ?? ""] };
  }
  return shortest;
}

/**
 * The most of the sorted `ticks` in any hour up to `horizon`: a sliding hour, so a burst across the hour's
 * turn counts whole; ticks known for under an hour (a dense cron cut short) are scaled up at their rate.
 */
function busiestHour(ticks: readonly number[], from: number, horizon: number): number {
  const known = ticks.filter((at) => at <= horizon);
  const span = horizon - from;
  if (span < hourMs) return Math.ceil((known.length * hourMs) / Math.max(span, 1000));
  let peak = 0;
  let start = 0;
  for (let end = 0; end < known.length; end++) {
    while ((known[end] ?? 0) - (known[start] ?? 0) >= hourMs) start += 1;
    peak = Math.max(peak, end - start + 1);
  }
  return peak;
}

/**
 * The most runs `specs` could start in an hour of the next day: the busiest hour of their ticks together
 * or of each entry alone (an entry cut short bounds how far the others are known), whichever is more.
 */
export function peakRunsPerHour(specs: readonly Entry[], from: Date): number {
  const start = from.getTime();
  const until = start + dayMs;
  const all: number[] = [];
  let horizon = until;
  let peak = 0;
  for (const spec of specs) {
    const walked = walk(spec, from, until, loadTicksPerEntry);
    const own = walked.cut ? (walked.ticks.at(-1) ?? until) : until;
    peak = Math.max(peak, busiestHour(walked.ticks, start, own));
    horizon = Math.min(horizon, own);
    all.push(...walked.ticks);
  }
  all.sort((a, b) => a - b);
  return Math.max(peak, busiestHour(all, start, horizon));
}
