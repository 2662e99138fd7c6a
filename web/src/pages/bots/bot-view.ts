/** A bot as the API shows it (BotView of src/server/bots/bot-control.ts). */
export interface Bot {
  id: string;
  name: string;
  mode: "simple" | "custom" | "image";
  state: string;
  image: string | null;
  run_id: string | null;
  restarts: number;
  restart_policy: string;
  exit_code: number | null;
  oom_killed: boolean;
  error: { code: string; message: string; hint?: string } | null;
  uptime_secs: number | null;
  memory_bytes: number | null;
  cpu_percent: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  expires_at: string;
  last_logs?: string[];
}

/** States in which a bot still has (or is getting) a container: stop applies. */
export const liveStates = ["building", "pulling", "running"];

export function uptime(secs: number | null): string {
  if (secs === null) return "";
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
}

export function memory(bytes: number | null): string {
  if (bytes === null) return "";
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function cpu(percent: number | null): string {
  return percent === null ? "" : `${percent.toFixed(1)} %`;
}
