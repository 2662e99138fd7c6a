import { expect } from "vitest";
import { api } from "./server.js";

/** A bot as `GET /api/bots/:name` shows it (the fields tests read). */
export interface BotView {
  id: string;
  name: string;
  state: string;
  image: string | null;
  runner_id: string | null;
  run_id: string | null;
  restarts: number;
  exit_code: number | null;
  oom_killed: boolean;
  error: { code: string; message: string; hint: string } | null;
  uptime_secs: number | null;
  memory_bytes: number | null;
  cpu_percent: number | null;
  last_logs?: string[];
}

export async function botStatus(url: string, name: string, token?: string): Promise<BotView> {
  const answer = await api<BotView>(url, "GET", `/api/bots/${name}`, undefined, token);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body;
}

/** Polls the bot until `predicate` holds: its record follows its run's events. */
export async function waitBot(
  url: string,
  name: string,
  predicate: (bot: BotView) => boolean,
  timeoutMs = 60_000,
  token?: string,
): Promise<BotView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const bot = await botStatus(url, name, token);
    if (predicate(bot)) return bot;
    if (Date.now() > deadline) throw new Error(`bot ${name} never matched; last: ${JSON.stringify(bot)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The bot's container output lines (or its build's, with `?build=1`). */
export async function botLogs(url: string, name: string, query = ""): Promise<string[]> {
  const answer = await api<{ lines: { text: string }[] }>(url, "GET", `/api/bots/${name}/logs${query}`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.lines.map((line) => line.text);
}

/** Polls the bot's logs until a line holds `text`. */
export async function waitBotLogs(
  url: string,
  name: string,
  text: string,
  timeoutMs = 30_000,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = await botLogs(url, name);
    if (lines.some((line) => line.includes(text))) return lines;
    if (Date.now() > deadline) throw new Error(`bot ${name} never printed ${text}; got ${lines.join("|")}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
