import type { components } from "../client/api-types.js";

/** A runner as `GET /api/runners` lists it. */
export type ListedRunner = components["schemas"]["Runner"];

/** What a queued run waits for, as `GET /api/runs/{id}` says (`waiting_for`). */
export type RunnerNeed = NonNullable<components["schemas"]["Run"]["waiting_for"]>[number];

/**
 * Why a queued run has not started: one line per distinct reason the server gave, e.g.
 * `queued: waiting for a runner of tenant acme in group linux: 2 runners online, none of tenant
 * acme and none shared (...)`. Empty when a runner that may take each need has room.
 */
export function waitingLines(needs: RunnerNeed[]): string[] {
  const reasons = needs.flatMap((need) => (need.reason === null ? [] : [`queued: ${need.reason}`]));
  return [...new Set(reasons)];
}
