import { writeFileSync } from "node:fs";
import type { operations } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { showBytes } from "../core/memory-size.js";
import { printable } from "../core/terminal-text.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { printJson, table } from "./table.js";

type StatsAnswer = operations["getBotStats"]["responses"]["200"]["content"]["application/json"];
type AlertsAnswer = operations["getBotAlerts"]["responses"]["200"]["content"]["application/json"];

/** A bot's route of the API. */
export const botPath = (name: string, rest = ""): string => `/api/bots/${encodeURIComponent(name)}${rest}`;

/** `runyard bot stats NAME [--since 1h]`: the bot's use over time, a row per sample. */
export async function botStats(
  name: string,
  flags: { since?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const query = flags.since !== undefined ? `?since=${encodeURIComponent(flags.since)}` : "";
  const answer = await apiClient(ctx).request<StatsAnswer>("GET", botPath(name, `/stats${query}`));
  if (flags.json) return printJson(ctx.stdout, answer);
  if (answer.samples.length === 0) {
    ctx.stderr.write(
      `bot ${name} has no samples since ${answer.since} (they come every 5 s while it runs)\n`,
    );
    return 0;
  }
  const rows = [["TIME", "CPU", "MEMORY", "LIMIT", "NET IN", "NET OUT", "PIDS", "RESTARTS"]];
  for (const sample of answer.samples) {
    rows.push([
      sample.at,
      `${sample.cpu_percent.toFixed(1)}%`,
      showBytes(sample.memory_bytes),
      showBytes(sample.memory_limit_bytes),
      showBytes(sample.net_rx_bytes),
      showBytes(sample.net_tx_bytes),
      String(sample.pids),
      String(sample.restarts),
    ]);
  }
  ctx.stderr.write(`bot ${name}: one row per ${answer.resolution_secs} s since ${answer.since}\n`);
  ctx.stdout.write(`${table(rows)}\n`);
  return 0;
}

/** `runyard bot alerts NAME`: the alerts it was started with and when they held. */
export async function botAlerts(name: string, flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const answer = await apiClient(ctx).request<AlertsAnswer>("GET", botPath(name, "/alerts"));
  if (flags.json) return printJson(ctx.stdout, answer);
  const inherited = answer.inherited ?? [];
  if (answer.alerts.length === 0 && inherited.length === 0) {
    ctx.stdout.write(
      `bot ${name} has no alerts; start it with --alert (e.g. --alert memory>80%/5m --notify URL)\n`,
    );
    return 0;
  }
  const list = (alerts: Record<string, unknown>[]) => alerts.map((alert) => JSON.stringify(alert)).join(", ");
  if (answer.alerts.length > 0) ctx.stdout.write(`alerts: ${list(answer.alerts)}\n`);
  if (inherited.length > 0) ctx.stdout.write(`inherited from its tenant: ${list(inherited)}\n`);
  if ((answer.overridden ?? []).length > 0)
    ctx.stdout.write(`its tenant's, overridden by its own: ${list(answer.overridden ?? [])}\n`);
  ctx.stdout.write(
    `notify${answer.notify_inherited ? " (its tenant's)" : ""}: ${answer.notify.join(", ") || "-"}\n`,
  );
  if (answer.episodes.length === 0) ctx.stdout.write("none held yet\n");
  else {
    const rows = [["KIND", "STARTED", "ENDED", "MESSAGE"]];
    for (const episode of answer.episodes) {
      const failed = episode.notify_error ? ` (notify: ${episode.notify_error})` : "";
      rows.push([
        episode.kind,
        episode.started_at,
        episode.ended_at ?? "holds",
        printable(episode.message + failed),
      ]);
    }
    ctx.stdout.write(`${table(rows)}\n`);
  }
  return 0;
}

/** `runyard bot webhook NAME`: where to send the bot's webhooks, e.g. for Telegram's setWebhook. */
export async function botWebhook(name: string, flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const api = apiClient(ctx);
  const answer = await api.request<{ bot: string; port: number; path: string; secret: string }>(
    "GET",
    botPath(name, "/webhook"),
  );
  if (flags.json) return printJson(ctx.stdout, { ...answer, url: `${api.baseUrl}${answer.path}` });
  ctx.stdout.write(`${api.baseUrl}${answer.path}\n`);
  ctx.stderr.write(
    `POSTs there go to port ${answer.port} in bot ${name}'s container; the last part is its secret (keep it like a password)\n`,
  );
  return 0;
}

/** `runyard bot logs NAME --download FILE`: the whole log its runner keeps, `-` for stdout. */
export async function botLogDownload(name: string, file: string, ctx: CliContext): Promise<number> {
  if (file === "") throw new RunyardError("USAGE", "--download needs a file name, or - for stdout");
  const text = await apiClient(ctx).text(botPath(name, "/logs/download"));
  if (file === "-") ctx.stdout.write(text);
  else {
    writeFileSync(file, text, { mode: 0o600 });
    ctx.stderr.write(`bot ${name}'s log written to ${file} (${Buffer.byteLength(text)} bytes)\n`);
  }
  return 0;
}

/**
 * `--alert` values: `memory>80%/5m` (over 80 % of its memory limit for 5 minutes),
 * `restarts>=3/10m` (3 restarts within 10 minutes, or the restart loop ending it), `unhealthy`.
 */
export function alertFlag(value: string): Record<string, unknown> {
  const text = value.trim();
  if (text === "unhealthy") return { kind: "unhealthy" };
  const memoryAlert = /^memory>(\d+(?:\.\d+)?)%(?:\/(\d+)(s|m|h))?$/.exec(text);
  if (memoryAlert) {
    const percent = Number(memoryAlert[1]);
    if (percent <= 0 || percent > 100)
      throw alertUsage(value, "the memory percent is above 0 and at most 100");
    return {
      kind: "memory",
      above_percent: percent,
      for_secs: secondsOf(memoryAlert[2], memoryAlert[3], 300),
    };
  }
  const restarts = /^restarts>=(\d+)(?:\/(\d+)(s|m|h))?$/.exec(text);
  if (restarts) {
    return {
      kind: "restart_loop",
      restarts: Number(restarts[1]),
      within_secs: secondsOf(restarts[2], restarts[3], 600),
    };
  }
  throw alertUsage(value, "write memory>80%/5m, restarts>=3/10m or unhealthy");
}

function secondsOf(amount: string | undefined, unit: string | undefined, fallback: number): number {
  if (amount === undefined) return fallback;
  return Number(amount) * { s: 1, m: 60, h: 3600 }[unit as "s" | "m" | "h"];
}

function alertUsage(value: string, why: string): RunyardError {
  return new RunyardError("USAGE", `--alert ${value}: ${why}`, {
    hint: "For example --alert memory>80%/5m --alert restarts>=3/10m --alert unhealthy --notify https://hooks.example.com/bot",
  });
}
