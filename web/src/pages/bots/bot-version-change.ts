import type { Schema } from "../../api.js";
import { memory } from "./bot-view.js";

type Version = Schema<"BotVersion">;

/**
 * What a version changed from the one it was made from (`from_version`, else the one numbered
 * before it): its image, its code or command, env names added, removed or given a new value
 * (names only: the API never gives a value), stored secrets, limits, restart policy and health
 * check. Each item is a short sentence; none for the first version.
 */
export function versionChanges(version: Version, versions: Version[]): string[] {
  const before = previousOf(version, versions);
  if (!before) return [];
  const now = version.summary;
  const was = before.summary;
  const changes: string[] = [];
  const image = (v: Version) => v.image ?? text(record(v.summary.source).image);
  if (image(version) && image(before) && image(version) !== image(before))
    changes.push(`image ${image(before)} → ${image(version)}`);
  changes.push(...sourceChanges(record(was.source), record(now.source)));
  const names = (summary: Record<string, unknown>) => strings(summary.env_names);
  const added = names(now).filter((name) => !names(was).includes(name));
  const removed = names(was).filter((name) => !names(now).includes(name));
  const changed = strings(now.env_changed);
  if (added.length > 0) changes.push(`env added: ${added.join(", ")}`);
  if (removed.length > 0) changes.push(`env removed: ${removed.join(", ")}`);
  if (changed.length > 0) changes.push(`env changed: ${changed.join(", ")}`);
  const secretsAdded = strings(now.secrets).filter((name) => !strings(was.secrets).includes(name));
  const secretsRemoved = strings(was.secrets).filter((name) => !strings(now.secrets).includes(name));
  if (secretsAdded.length > 0) changes.push(`stored secrets added: ${secretsAdded.join(", ")}`);
  if (secretsRemoved.length > 0) changes.push(`stored secrets removed: ${secretsRemoved.join(", ")}`);
  changes.push(...limitChanges(record(was.limits), record(now.limits)));
  const policy = (summary: Record<string, unknown>) => text(record(summary.restart).policy);
  if (policy(now) && policy(was) && policy(now) !== policy(was))
    changes.push(`restart ${policy(was)} → ${policy(now)}`);
  if (JSON.stringify(now.health ?? null) !== JSON.stringify(was.health ?? null))
    changes.push(
      now.health ? (was.health ? "health check changed" : "health check added") : "health check removed",
    );
  return changes;
}

/** The version this one was made from: named by the server since it kept it, else the one numbered before. */
function previousOf(version: Version, versions: Version[]): Version | undefined {
  const from = version.summary.from_version;
  const named = typeof from === "number" ? versions.find((v) => v.version === from) : undefined;
  return named ?? versions.find((v) => v.version < version.version);
}

function sourceChanges(was: Record<string, unknown>, now: Record<string, unknown>): string[] {
  if (!now.mode || !was.mode) return [];
  if (now.mode !== was.mode) return [`source ${text(was.mode)} → ${text(now.mode)}`];
  const changes: string[] = [];
  if (text(was.entrypoint) !== text(now.entrypoint))
    changes.push(`command ${text(was.entrypoint)} → ${text(now.entrypoint)}`);
  const git = (source: Record<string, unknown>) => {
    const { url, ref } = record(source.git);
    return url ? `${text(url)}${ref ? `@${text(ref)}` : ""}` : "";
  };
  if (git(was) !== git(now)) changes.push(`git ${git(was) || "archive"} → ${git(now) || "archive"}`);
  if (JSON.stringify(was.requirements ?? []) !== JSON.stringify(now.requirements ?? []))
    changes.push("requirements changed");
  const digest = (source: Record<string, unknown>) => text(source.code_digest);
  if (digest(was) && digest(now) && digest(was) !== digest(now))
    changes.push(`code ${digest(was).slice(7)} → ${digest(now).slice(7)}`);
  return changes;
}

function limitChanges(was: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const changes: string[] = [];
  if (typeof was.memory_bytes === "number" && typeof now.memory_bytes === "number")
    if (was.memory_bytes !== now.memory_bytes)
      changes.push(`memory limit ${memory(was.memory_bytes)} → ${memory(now.memory_bytes)}`);
  if (typeof was.cpus === "number" && typeof now.cpus === "number" && was.cpus !== now.cpus)
    changes.push(`CPU limit ${was.cpus} → ${now.cpus}`);
  return changes;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value))
    : {};
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}
