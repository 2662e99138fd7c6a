import type { components } from "../client/api-types.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { printList } from "./table.js";

type Schedule = components["schemas"]["Schedule"];

/** What a schedule's last tick did, in a few words. */
function lastOutcome(schedule: Schedule): string {
  const tick = schedule.last_tick;
  if (!tick) return "-";
  switch (tick.outcome) {
    case "started":
      return `started ${tick.run_id ?? "-"}`;
    case "skipped":
      return `skipped (overlap: ${tick.run_id ?? "a run"} still running)`;
    case "missed":
      return tick.ticks > 1 ? `missed (${tick.ticks} ticks)` : "missed";
    case "failed":
      return `failed: ${tick.detail ?? "-"}`;
  }
}

/** `runyard schedule list`. */
export async function scheduleList(
  flags: { tenant?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const query = flags.tenant ? `?tenant=${encodeURIComponent(flags.tenant)}` : "";
  const { schedules } = await apiClient(ctx).request<{ schedules: Schedule[] }>(
    "GET",
    `/api/schedules${query}`,
  );
  return printList(ctx.stdout, schedules, {
    json: flags.json,
    empty: "no schedules; add `schedule: {cron: ...}` to a workflow and `runyard workflow save` it",
    header: ["WORKFLOW", "CRON", "TIMEZONE", "NEXT TICK", "LAST TICK", "LAST OUTCOME"],
    row: (s) => [
      s.workflow,
      s.cron,
      s.timezone,
      s.next_tick_at ?? "never",
      s.last_tick_at ?? "-",
      lastOutcome(s),
    ],
  });
}
