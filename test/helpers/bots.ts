import { expect } from "vitest";
import { adminToken, api } from "./server.js";

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

/**
 * Waits until the bot's record satisfies `predicate`. Its record follows its run's events (a
 * state, a restart, an exit: `bot.state`), so it is read again when its run's event stream says
 * something, and once more a moment later (the record is written as the event is applied); a
 * field that moves with the runner's heartbeat (memory, uptime) is read at least each second.
 */
export async function waitBot(
  url: string,
  name: string,
  predicate: (bot: BotView) => boolean,
  timeoutMs = 60_000,
  token?: string,
): Promise<BotView> {
  const deadline = Date.now() + timeoutMs;
  let follow: RunFollow | undefined;
  try {
    for (;;) {
      const bot = await botStatus(url, name, token);
      if (predicate(bot)) return bot;
      if (Date.now() > deadline) throw new Error(`bot ${name} never matched; last: ${JSON.stringify(bot)}`);
      // A new life (an update, a start after a stop) is a new run: follow that one.
      if (bot.run_id && follow?.runId !== bot.run_id) {
        follow?.close();
        follow = followRun(url, bot.run_id, token);
      }
      await (follow ? follow.next(Math.min(1000, Math.max(deadline - Date.now(), 0) + 10)) : sleep(100));
    }
  } finally {
    follow?.close();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface RunFollow {
  runId: string;
  /** Resolves after the run's next event (and a short settle), or after `ms` at most. */
  next(ms: number): Promise<void>;
  close(): void;
}

/**
 * Follows a run's SSE stream: `next` resolves once an event came since the last call. A stream
 * the token may not read, or that ends (the run finished), leaves `next` to time out on its own
 * clock (150 ms: as a poll would; also just after an event, while its record is written).
 */
function followRun(url: string, runId: string, token?: string): RunFollow {
  const closing = new AbortController();
  let heard = false;
  let heardAt = 0;
  let open = true;
  let wake: (() => void) | undefined;
  const tell = () => {
    heard = true;
    heardAt = Date.now();
    wake?.();
  };
  void (async () => {
    try {
      const response = await fetch(new URL(`/api/runs/${runId}/events`, url), {
        headers: { authorization: `Bearer ${token ?? adminToken}` },
        signal: closing.signal,
      });
      if (!response.ok || !response.body) return;
      for await (const _chunk of response.body) tell();
    } catch {
      // Closed by us, or the server went away: the waits fall back to their clock.
    } finally {
      open = false;
      tell();
    }
  })();
  return {
    runId,
    async next(ms) {
      if (!heard) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          // Just after an event, its record may still be being written: look again soon.
          const soon = !open || Date.now() - heardAt < 500;
          timer = setTimeout(resolve, soon ? Math.min(ms, 150) : ms);
        });
        clearTimeout(timer);
        wake = undefined;
      }
      const told = heard;
      heard = false;
      // The record is written as the event is applied: give it a moment before reading.
      if (told && open) await sleep(50);
    },
    close: () => closing.abort(),
  };
}

/** The bot's container output lines (or its build's, with `?build=1`). */
export async function botLogs(url: string, name: string, query = ""): Promise<string[]> {
  const answer = await api<{ lines: { text: string }[] }>(url, "GET", `/api/bots/${name}/logs${query}`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.lines.map((line) => line.text);
}

/**
 * Waits until a line of the bot's logs holds `text`: its output comes as its run's events, so the
 * logs are read again when the run's event stream says something (each second at least).
 */
export async function waitBotLogs(
  url: string,
  name: string,
  text: string,
  timeoutMs = 30_000,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let follow: RunFollow | undefined;
  try {
    for (;;) {
      const lines = await botLogs(url, name);
      if (lines.some((line) => line.includes(text))) return lines;
      if (Date.now() > deadline) throw new Error(`bot ${name} never printed ${text}; got ${lines.join("|")}`);
      const { run_id: runId } = await botStatus(url, name);
      if (runId && follow?.runId !== runId) {
        follow?.close();
        follow = followRun(url, runId);
      }
      await (follow ? follow.next(1000) : sleep(100));
    }
  } finally {
    follow?.close();
  }
}

/**
 * Resolves once the run's event stream (SSE) has carried `text` (in an output line, say): read as
 * it comes, not polled. Rejects after `timeoutMs`, or if the stream ends without it.
 */
export async function waitRunText(
  url: string,
  runId: string,
  text: string,
  token?: string,
  timeoutMs = 60_000,
): Promise<void> {
  const closing = new AbortController();
  const timer = setTimeout(() => closing.abort(), timeoutMs);
  let seen = "";
  try {
    const response = await fetch(new URL(`/api/runs/${runId}/events`, url), {
      headers: { authorization: `Bearer ${token ?? adminToken}` },
      signal: closing.signal,
    });
    if (!response.ok || !response.body) throw new Error(`run ${runId}'s events answered ${response.status}`);
    const decoder = new TextDecoder();
    for await (const chunk of response.body) {
      // What came before, less than the text's length of it, may hold the text's start.
      seen = seen.slice(-text.length) + decoder.decode(chunk, { stream: true });
      if (seen.includes(text)) return;
    }
    throw new Error(`run ${runId} ended without ${text}`);
  } catch (error) {
    if (closing.signal.aborted) throw new Error(`run ${runId} never said ${text} in ${timeoutMs} ms`);
    throw error;
  } finally {
    clearTimeout(timer);
    closing.abort();
  }
}
