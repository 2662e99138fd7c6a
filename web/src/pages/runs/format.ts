import type { Schema } from "../../api.js";
import { formatDuration } from "./durations.js";

/** How durations and sizes read on the runs pages (dates: `dates.ts`). */

export { formatDuration, formatTick } from "./durations.js";

/** From start to finish, or to now while it runs; empty before it starts. */
export function runDuration(
  run: Pick<Schema<"Run">, "started_at" | "finished_at">,
  now = Date.now(),
): string {
  if (!run.started_at) return "";
  const end = run.finished_at ? Date.parse(run.finished_at) : now;
  return formatDuration(end - Date.parse(run.started_at));
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
