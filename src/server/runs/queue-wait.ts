import { type RunnerRecord, servesTenant } from "../../store/index.js";

/** What a queued run needs of a runner: the host (or job kind) it is for, group and labels. */
export interface QueuedNeed {
  host: string;
  /** null: any group. */
  group: string | null;
  labels: string[];
}

/** An online runner as placement sees it, with how many jobs it holds now. */
export type OnlineRunner = Pick<
  RunnerRecord,
  "id" | "group" | "labels" | "tenant_id" | "shared" | "isolation" | "capacity"
> & { held: number };

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

function fits(runner: OnlineRunner, need: QueuedNeed): boolean {
  return (
    (need.group === null || runner.group === need.group) &&
    need.labels.every((label) => runner.labels.includes(label) || label === `runner:${runner.id}`)
  );
}

/**
 * Why a need of a run of `tenantId` is not served right now, naming tenant, group and labels and
 * what would serve it, e.g. `waiting for a runner of tenant acme in group linux with labels
 * [docker]: 2 runners online, none of tenant acme and none shared (start one with a runner token
 * of tenant acme, or mark a runner --shared)`. Null when a runner that may take it has room: it
 * takes it at once. Counts every online runner, whichever tenant it serves, so the reason never
 * says "no runners online" while one is connected.
 */
export function waitReason(need: QueuedNeed, tenantId: string | null, online: OnlineRunner[]): string | null {
  const allowed = online.filter((runner) => servesTenant(runner, tenantId));
  const matching = allowed.filter((runner) => fits(runner, need));
  if (matching.some((runner) => runner.held < runner.capacity)) return null;
  const whose = tenantId === null ? "outside any tenant" : `of tenant ${tenantId}`;
  const where = need.group === null ? "in any group" : `in group ${need.group}`;
  const labels = need.labels.length > 0 ? ` with labels [${need.labels.join(",")}]` : "";
  const head = `waiting for a runner ${whose} ${where}${labels}`;
  const token =
    tenantId === null ? "a runner token made without --tenant" : `a runner token of tenant ${tenantId}`;
  if (online.length === 0) return `${head}: no runners online (start one with ${token})`;
  const count = plural(online.length, "runner");
  if (allowed.length === 0) {
    return tenantId === null
      ? `${head}: ${count} online, all of tenants, none outside any tenant (start one with ${token})`
      : `${head}: ${count} online, none of tenant ${tenantId} and none shared (start one with ${token}, or mark a runner --shared)`;
  }
  if (matching.length === 0) {
    const flags = [
      need.group === null ? "" : `--group ${need.group}`,
      need.labels.length > 0 ? `--labels ${need.labels.join(",")}` : "",
    ].filter(Boolean);
    const which = tenantId === null ? "outside any tenant" : `of tenant ${tenantId} or shared`;
    return `${head}: ${count} online, ${allowed.length} ${which}, none of them ${where}${labels} (start one with ${flags.length > 0 ? `${flags.join(" ")} and ` : ""}${token})`;
  }
  return `${head}: ${plural(matching.length, "matching runner")} online, all busy`;
}
