import { type BotState, liveBotStates, upBotStates } from "../../../../src/core/bot-states.js";
import type { Schema } from "../../api.js";

/** A bot as the API lists it. */
export type Bot = Schema<"Bot">;

/** Whether the bot still has (or is getting) a container: stop applies. */
export function isLive(state: BotState): boolean {
  return liveBotStates.some((live) => live === state);
}

/** Whether the bot's container is up (starting, running or unhealthy): it can be updated. */
export function isUp(state: BotState): boolean {
  return upBotStates.some((up) => up === state);
}

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
