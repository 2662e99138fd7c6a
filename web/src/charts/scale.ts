/**
 * The axes the UI's charts share: round ("nice") ticks for a range of numbers, ticks on round
 * times for a span of time, and the linear map from a value to a pixel. Plain functions, no DOM.
 */

/** Ticks of a numeric axis: from 0 (or below, for negative data) up to `top`, `step` apart. */
export interface NumberTicks {
  top: number;
  step: number;
  ticks: number[];
}

/**
 * Round ticks that cover 0..`most` in about `count` steps of 1, 2, 2.5 or 5 times a power of ten;
 * the top is the first tick at or above the data, so the data fills the chart.
 */
export function niceTicks(most: number, count = 4): NumberTicks {
  const high = Number.isFinite(most) && most > 0 ? most : 1;
  const rough = high / Math.max(count, 1);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = round(([1, 2, 2.5, 5, 10].find((m) => m * power >= rough) ?? 10) * power);
  const steps = Math.max(1, Math.ceil(high / step - 1e-9));
  const ticks = Array.from({ length: steps + 1 }, (_, i) => round(i * step));
  return { top: round(steps * step), step, ticks };
}

/** A product of a float step without its binary tail (0.30000000000000004 as 0.3). */
function round(value: number): number {
  return Number(value.toPrecision(12));
}

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;
const timeSteps = [
  5 * second,
  10 * second,
  15 * second,
  30 * second,
  minute,
  2 * minute,
  5 * minute,
  10 * minute,
  15 * minute,
  30 * minute,
  hour,
  2 * hour,
  3 * hour,
  6 * hour,
  12 * hour,
  day,
  2 * day,
  7 * day,
];

/**
 * Ticks on round local times (every 10 min, every 6 h, at midnight...) within `start`..`end`
 * (epoch ms), at most about `count` of them; each with its label: the time of day, or the date
 * when a tick falls on a midnight of a span of days.
 */
export function timeTicks(start: number, end: number, count = 5): { at: number; label: string }[] {
  if (!(end > start)) return [];
  const span = end - start;
  const step = timeSteps.find((s) => span / s <= count) ?? timeSteps.at(-1)!;
  // Round in local time: a tick on the hour is on the user's hour, whatever their zone.
  const offset = new Date(start).getTimezoneOffset() * minute;
  const first = Math.ceil((start - offset) / step) * step + offset;
  const ticks: { at: number; label: string }[] = [];
  for (let at = first; at <= end; at += step) ticks.push({ at, label: timeLabel(at, step) });
  return ticks;
}

function timeLabel(at: number, step: number): string {
  const date = new Date(at);
  const two = (n: number) => String(n).padStart(2, "0");
  const clock = `${two(date.getHours())}:${two(date.getMinutes())}`;
  if (step < minute) return `${clock}:${two(date.getSeconds())}`;
  if (step >= day || (step >= 3 * hour && clock === "00:00")) {
    return `${two(date.getMonth() + 1)}-${two(date.getDate())}`;
  }
  return clock;
}

/**
 * Steps of an axis of elapsed time, each a duration that reads round ("200 ms", "2 s", "5 min"):
 * below the clock's steps, milliseconds and seconds; days past a week are counted whole.
 */
const durationSteps = [1, 2, 5, 10, 20, 50, 100, 200, 500, second, 2 * second, ...timeSteps];

/**
 * Ticks of elapsed time from 0 to the first round duration at or above `length` ms, at most
 * about `count` steps of a round duration apart (0, 2 s, 4 s, 6 s, 8 s, 10 s for 9.3 s).
 */
export function durationTicks(length: number, count = 5): NumberTicks {
  const high = Number.isFinite(length) && length > 0 ? length : 1;
  const step = durationSteps.find((s) => high / s <= count) ?? Math.ceil(high / count / day) * day;
  const steps = Math.max(1, Math.ceil(high / step - 1e-9));
  return { top: steps * step, step, ticks: Array.from({ length: steps + 1 }, (_, i) => i * step) };
}

/** The linear map from `domain` to `range` (a value to a pixel; a range may run downwards). */
export function linear(domain: [number, number], range: [number, number]): (value: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const width = d1 - d0 || 1;
  return (value) => r0 + ((value - d0) / width) * (r1 - r0);
}

/**
 * Whether a line at `reference` (a memory limit, a daily budget) belongs on the scale of data up to
 * `most`: only when it is at most four times the data's top, so the data keeps a quarter of the
 * height at least; a limit far above is offered behind a toggle instead of flattening the data.
 */
export function referenceInView(most: number, reference: number): boolean {
  return most <= 0 || reference <= 4 * most;
}
