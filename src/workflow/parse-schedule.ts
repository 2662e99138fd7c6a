/** `schedule:`: when a saved workflow runs on its own (docs/workflows.md "Schedules"). */
import { isMap, isSeq } from "yaml";
import { quoted } from "../core/quoted-input.js";
import {
  cronProblem,
  isTimeZone,
  type ScheduleSpec,
  scheduleCatchUps,
  scheduleOverlaps,
  timeZones,
} from "./schedule.js";
import { didYouMean } from "./suggest.js";
import { FieldReader, type YamlReader } from "./yaml-reader.js";

const scheduleKeys = ["cron", "timezone", "overlap", "catch_up"];
/** More schedules than this on one workflow is a mistake, not a plan. */
const maxSchedules = 20;
/**
 * The longest cron expression and time zone read: checked before either is parsed or matched
 * against the zones, so a long one costs nothing (the longest IANA zone name has 32 characters;
 * a cron of many lists stays far below 200).
 */
export const maxCronLength = 200;
export const maxTimeZoneLength = 64;

/** One `{cron, timezone, overlap, catch_up}` mapping, or a list of them. */
export function readSchedules(reader: YamlReader, node: unknown): ScheduleSpec[] {
  if (!isSeq(node)) {
    const spec = readSchedule(reader, node, "schedule");
    return spec ? [spec] : [];
  }
  if (node.items.length > maxSchedules) {
    reader.report(
      node,
      `schedule lists ${node.items.length} entries; a workflow has at most ${maxSchedules}`,
      "fold entries into one cron expression with lists (`0 8,12,18 * * *`)",
    );
  }
  const specs: ScheduleSpec[] = [];
  const seen = new Map<string, number>();
  for (const [i, item] of node.items.entries()) {
    const spec = readSchedule(reader, reader.deref(item), `schedule[${i}]`);
    if (!spec) continue;
    const key = `${spec.cron.trim().replace(/\s+/g, " ")}\u0000${spec.timezone}`;
    const first = seen.get(key);
    if (first !== undefined) {
      reader.report(
        reader.deref(item),
        `schedule[${i}] repeats schedule[${first}] (cron "${spec.cron}" in ${spec.timezone}): the two would start two runs at every tick`,
        "remove one of them; to fire at more times, list them in one cron (`0 8,12,18 * * *`)",
      );
      continue;
    }
    seen.set(key, i);
    specs.push(spec);
  }
  return specs;
}

function readSchedule(reader: YamlReader, node: unknown, label: string): ScheduleSpec | undefined {
  if (!isMap(node)) {
    reader.report(node, `${label} must be a mapping with cron`, 'write schedule: {cron: "*/5 * * * *"}');
    return undefined;
  }
  const fields = reader.fields(node, `in ${label}`, scheduleKeys);
  const cronField = fields.get("cron");
  if (!cronField) {
    reader.report(node, `${label} has no cron`, 'add cron: "*/5 * * * *" (minute hour day month weekday)');
    return undefined;
  }
  const cron = reader.string(cronField.value, `cron of ${label}`);
  let ok = cron !== undefined;
  if (cron !== undefined && cron.length > maxCronLength) {
    ok = false;
    reader.report(
      cronField.value,
      `cron of ${label}: ${quoted(cron)} is longer than ${maxCronLength} characters`,
      'five fields, minute hour day-of-month month day-of-week (e.g. "*/5 * * * *"); use ranges and steps (1-5, */10) rather than long lists',
    );
  } else if (cron !== undefined) {
    const problem = cronProblem(cron);
    if (problem) {
      ok = false;
      reader.report(
        cronField.value,
        `cron of ${label}: ${quoted(cron)} is not a cron expression: ${problem}`,
        'five fields, minute hour day-of-month month day-of-week (e.g. "*/5 * * * *" every five minutes, "0 3 * * 1-5" at 03:00 on weekdays), or six with seconds first',
      );
    }
  }
  let timezone = "UTC";
  const zoneField = fields.get("timezone");
  if (zoneField) {
    const zone = reader.string(zoneField.value, `timezone of ${label}`);
    if (zone === undefined) ok = false;
    else if (zone.length > maxTimeZoneLength) {
      ok = false;
      reader.report(
        zoneField.value,
        `timezone of ${label}: ${quoted(zone)} is longer than ${maxTimeZoneLength} characters, so it is no time zone`,
        'use an IANA name such as "UTC", "Europe/Berlin" or "America/New_York"',
      );
    } else if (!isTimeZone(zone)) {
      ok = false;
      const guess = didYouMean(zone, timeZones());
      reader.report(
        zoneField.value,
        `timezone of ${label}: ${quoted(zone)} is not a known time zone`,
        guess
          ? `did you mean "${guess}"?`
          : 'use an IANA name such as "UTC", "Europe/Berlin" or "America/New_York"',
      );
    } else timezone = zone;
  }
  const read = new FieldReader(reader, fields, label);
  const overlap = fields.has("overlap") ? read.choice("overlap", scheduleOverlaps, "choices") : "skip";
  const catchUp = fields.has("catch_up") ? read.choice("catch_up", scheduleCatchUps, "choices") : "latest";
  if (!ok || cron === undefined || overlap === undefined || catchUp === undefined) return undefined;
  return { cron, timezone, overlap, catchUp };
}
