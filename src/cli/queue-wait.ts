import type { RunnerNeed } from "../workflow/model.js";

/** A runner as `GET /api/runners` lists it, as far as placement goes. */
export interface ListedRunner {
  id: string;
  group: string;
  state: string;
  labels: string[];
  capacity: number;
  running_jobs: string[];
}

const matches = (runner: ListedRunner, need: RunnerNeed): boolean =>
  (need.group === null || runner.group === need.group) &&
  need.labels.every((label) => runner.labels.includes(label));

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * Why a queued run has not started: one line per host no online runner can take now, e.g.
 * `queued: waiting for a runner in group gpu with labels [cuda] (2 runners online, none matching)`.
 * Empty when every host has a runner with room, which then takes it at once.
 */
export function waitingLines(needs: RunnerNeed[], runners: ListedRunner[]): string[] {
  const online = runners.filter((runner) => runner.state !== "offline");
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const need of needs) {
    const key = JSON.stringify([need.group, [...need.labels].sort()]);
    if (seen.has(key)) continue;
    seen.add(key);
    const matching = online.filter((runner) => matches(runner, need));
    if (matching.some((runner) => runner.running_jobs.length < runner.capacity)) continue;
    const where = need.group === null ? "in any group" : `in group ${need.group}`;
    const labels = need.labels.length > 0 ? ` with labels [${need.labels.join(",")}]` : "";
    const why =
      online.length === 0
        ? "no runners online"
        : matching.length === 0
          ? `${plural(online.length, "runner")} online, none matching`
          : `${plural(matching.length, "matching runner")} online, all busy`;
    lines.push(`queued: waiting for a runner ${where}${labels} (${why})`);
  }
  return lines;
}
