import type { Schema } from "../../api.js";

/** How durations and sizes read on the runs pages (dates: `dates.ts`). */

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

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
