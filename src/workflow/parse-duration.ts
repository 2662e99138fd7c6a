/**
 * Durations in a workflow file: seconds as a number (`90`, `0.5`), or text with a unit (`500ms`,
 * `30s`, `10m`, `2h`, `1d`). Retry delays, the run's `timeout` and an approval's `wait` read this.
 */
import { isScalar } from "yaml";
import type { YamlReader } from "./yaml-reader.js";

const unitSeconds: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 };
const durationText = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/** `10m` in seconds (600); undefined when the text is no duration. */
export function durationSeconds(text: string): number | undefined {
  const match = durationText.exec(text.trim());
  return match ? Number(match[1]) * unitSeconds[match[2]!]! : undefined;
}

/**
 * A duration in seconds, reported at its line and column when it is none. `positive`: zero is
 * refused too (a timeout of nothing); else zero is allowed (no delay).
 */
export function readDuration(
  reader: YamlReader,
  node: unknown,
  label: string,
  positive: boolean,
): number | undefined {
  const value = isScalar(node) ? node.value : undefined;
  const seconds =
    typeof value === "number" ? value : typeof value === "string" ? durationSeconds(value) : undefined;
  const fits = seconds !== undefined && Number.isFinite(seconds) && (positive ? seconds > 0 : seconds >= 0);
  if (fits) return seconds;
  const got = typeof value === "number" || typeof value === "string" ? JSON.stringify(value) : "no value";
  const negative = seconds !== undefined && seconds < 0;
  reader.report(
    node,
    `${label} must be ${positive ? "a positive" : "a non-negative"} duration, got ${got}`,
    negative
      ? "a wait cannot be negative: write 0 for none, or a number of seconds"
      : 'write seconds as a number (30), or with a unit: "500ms", "30s", "10m", "2h", "1d"',
  );
  return undefined;
}
