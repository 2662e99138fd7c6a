/**
 * The top-level `timeout:` (the whole run's limit, beside a step's `timeout_seconds`): seconds, or
 * a duration such as `30m`. Past it the engine stops the run's steps and the run ends `timeout`.
 */
import { readDuration } from "./parse-duration.js";
import type { YamlReader } from "./yaml-reader.js";

/** A run may be limited to 30 days at most, the longest an approval may wait. */
export const maxRunTimeoutSeconds = 30 * 86_400;

export function readRunTimeout(reader: YamlReader, node: unknown): number | undefined {
  const seconds = readDuration(reader, node, "timeout", true);
  if (seconds === undefined || seconds <= maxRunTimeoutSeconds) return seconds;
  reader.report(
    node,
    `timeout is ${seconds} s, more than 30 days`,
    "a run is limited to 30 days at most (2592000 s)",
  );
  return undefined;
}
