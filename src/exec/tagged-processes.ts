import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";

/**
 * Processes found by a tag in their environment, wherever they went. An agent CLI's tools may
 * start processes in sessions or groups of their own (Claude Code's Bash tool does): killing the
 * CLI's process group misses them, and once the CLI is gone they are reparented and no tree
 * leads to them. The environment is inherited by every descendant that does not scrub it, so a
 * tag set when the CLI starts finds them all.
 */
export const processTagVariable = "RUNYARD_PROCESS_TAG";

/** A new tag under `prefix` (e.g. a runner's), so a later life of the runner can find all of its tags. */
export function newProcessTag(prefix: string): string {
  return `${prefix}.${randomUUID()}`;
}

/**
 * Pids of the live processes whose environment carries `tag` (Linux /proc; none elsewhere).
 * `{ prefix: true }`: every tag that starts with `tag`.
 */
export function taggedProcesses(tag: string, options: { prefix?: boolean } = {}): number[] {
  const needle = Buffer.from(`${processTagVariable}=${tag}${options.prefix ? "" : "\0"}`);
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      // A process of another user, or one that just ended, cannot be read: it is not ours.
      if (readFileSync(`/proc/${pid}/environ`).includes(needle)) found.push(pid);
    } catch {}
  }
  return found;
}

/** Kills every process carrying `tag` (SIGKILL: the work they belonged to has ended). Returns their pids. */
export function killTagged(tag: string, options: { prefix?: boolean } = {}): number[] {
  const pids = taggedProcesses(tag, options);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  return pids;
}
