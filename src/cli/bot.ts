import type { components, operations } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import type { RunEvent } from "../core/events.js";
import { showBytes } from "../core/memory-size.js";
import { printable } from "../core/terminal-text.js";
import type { ApiClient } from "./api-client.js";
import { apiClient } from "./api-client.js";
import { botLogDownload, botPath } from "./bot-history.js";
import { type BotStartFlags, botStartBody } from "./bot-start-body.js";
import type { CliContext } from "./context.js";
import { printJson, printList } from "./table.js";

/** A bot as the API answers it: the OpenAPI document's `Bot`, with status's last logs. */
type BotView = components["schemas"]["Bot"] & { last_logs?: string[] };

type BotLogs = operations["getBotLogs"]["responses"][200]["content"]["application/json"];
type LogLine = BotLogs["lines"][number];

export function duration(secs: number | null): string {
  if (secs === null) return "-";
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ${secs % 60}s`;
  if (secs < 86_400) return `${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m`;
  return `${Math.floor(secs / 86_400)}d ${Math.floor((secs % 86_400) / 3600)}h`;
}

const cpu = (percent: number | null): string => (percent === null ? "-" : `${percent.toFixed(1)}%`);

/** Why a bot ended, on stderr: its error and hint, or its exit code, then its last lines. */
function reportEnded(bot: { name: string; state: string }, end: Ended, ctx: CliContext): void {
  const how = [
    end.exit_code !== null && end.exit_code !== undefined ? `exit ${end.exit_code}` : undefined,
    end.oom_killed ? "out of memory (OOM-killed)" : undefined,
  ].filter(Boolean);
  ctx.stderr.write(`bot ${bot.name} ${end.state}${how.length ? ` (${how.join(", ")})` : ""}\n`);
  if (end.error) {
    ctx.stderr.write(`error: ${end.error.code}: ${end.error.message}\n`);
    if (end.error.hint) ctx.stderr.write(`hint: ${end.error.hint}\n`);
  } else if (end.oom_killed) {
    ctx.stderr.write(
      "hint: the bot used more memory than its limit; use less, or ask an admin for a larger bot_memory_mb quota.\n",
    );
  } else if (end.state === "crashed") {
    ctx.stderr.write(
      `hint: read its last lines below (\`runyard bot logs ${bot.name} --previous\` shows them again), fix the cause and start it again.\n`,
    );
  }
  if (end.last_logs && end.last_logs.length > 0) {
    ctx.stderr.write("last logs:\n");
    for (const line of end.last_logs) ctx.stderr.write(`  ${line}\n`);
  }
}

type Ended = Pick<BotView, "state"> &
  Partial<Pick<BotView, "exit_code" | "oom_killed" | "error" | "last_logs">>;

const endedStates = new Set(["stopped", "crashed", "timeout", "removed"]);

/**
 * Follows a started bot's run: build or pull output, then its first `checkSecs` of output, so a bot dying
 * at once (a bad token, an import error) is reported here with its last lines, not later in `bot status`.
 */
async function watchStart(
  api: ApiClient,
  name: string,
  runId: string,
  checkSecs: number,
  ctx: CliContext,
): Promise<number> {
  const abort = new AbortController();
  let running: { image?: string; runner?: string } | undefined;
  let ended: Ended | undefined;
  let timer: NodeJS.Timeout | undefined;
  let interrupted = false;
  let unhealthy: string | undefined;
  const off = ctx.onInterrupt(() => {
    interrupted = true;
    abort.abort();
  });
  const onEvent = (event: RunEvent): void => {
    if (event.type === "step.output") {
      const prefix = event.step === "run" ? `${name} | ` : `${event.step} | `;
      const out = event.step === "run" && event.stream === "stderr" ? ctx.stderr : ctx.stdout;
      for (const line of event.data.replace(/\n$/, "").split("\n")) out.write(`${prefix}${line}\n`);
    } else if (event.type === "bot.state") {
      if (event.state === "running") {
        if (running && event.restarts) {
          const how = event.exit_code === 0 && !event.oom_killed ? "exited" : "crashed";
          const oom = event.oom_killed ? ", OOM-killed" : "";
          ctx.stderr.write(
            `bot ${name} ${how} (exit ${event.exit_code ?? "-"}${oom}) and was restarted (restart ${event.restarts})\n`,
          );
        }
        running = {
          ...(event.image ? { image: event.image } : {}),
          ...(event.runner_id ? { runner: event.runner_id } : {}),
        };
        if (!timer) {
          if (checkSecs <= 0) abort.abort();
          else timer = setTimeout(() => abort.abort(), checkSecs * 1000);
        }
      } else if (event.state === "unhealthy" && !ended) {
        unhealthy = event.health?.output ?? "";
        abort.abort();
      } else if (endedStates.has(event.state)) {
        // The runner's word carries the exit and the last lines; the server's last word may add the error.
        ended = {
          ...ended,
          state: event.state,
          ...(event.exit_code !== undefined ? { exit_code: event.exit_code } : {}),
          ...(event.oom_killed !== undefined ? { oom_killed: event.oom_killed } : {}),
          ...(event.error ? { error: event.error } : {}),
          ...(event.last_logs ? { last_logs: event.last_logs } : {}),
        };
      } else if (!running) {
        ctx.stderr.write(`bot ${name}: ${event.state}...\n`);
      }
    } else if (event.type === "run.finished") {
      if (!ended) ended = { state: "stopped", ...(event.error ? { error: event.error } : {}) };
      else if (!ended.error && event.error) ended.error = event.error;
    }
  };
  try {
    await api.events(runId, { follow: true, signal: abort.signal, onEvent });
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    off();
    if (timer) clearTimeout(timer);
  }
  if (ended) {
    reportEnded({ name, state: ended.state }, ended, ctx);
    return 1;
  }
  if (unhealthy !== undefined) {
    ctx.stderr.write(
      `bot ${name} is unhealthy: its health check failed its retries in a row\nlast probe: ${unhealthy}\n` +
        `hint: \`runyard bot status ${name}\` shows the last probe; fix the bot or its health check and \`runyard bot update ${name}\`.\n`,
    );
    return 1;
  }
  if (interrupted && !running) {
    ctx.stderr.write(`stopped watching; bot ${name} goes on starting: \`runyard bot status ${name}\`\n`);
    return 130;
  }
  ctx.stdout.write(
    `bot ${name} is running${running?.image ? ` (image ${running.image})` : ""}\n` +
      `  logs:   runyard bot logs ${name} -f\n` +
      `  status: runyard bot status ${name}\n` +
      `  stop:   runyard bot stop ${name}\n`,
  );
  return 0;
}

/** `runyard bot start NAME --simple FILES... | --custom SRC | --image REF`. */
export async function botStart(
  name: string,
  flags: BotStartFlags & { detach?: boolean; check?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const checkSecs = flags.check === undefined ? 3 : Number(flags.check);
  if (!Number.isFinite(checkSecs) || checkSecs < 0) {
    throw new RunyardError("USAGE", `--check ${flags.check}: expected a number of seconds`, {
      hint: "For example --check 5; --check 0 returns as soon as the container runs.",
    });
  }
  const body = await botStartBody(name, flags, ctx);
  const api = apiClient(ctx);
  const started = await api.submit<{ bot: BotView; run_id: string }>("POST", "/api/bots", body);
  if (flags.json) {
    ctx.stdout.write(`${JSON.stringify(started)}\n`);
    if (flags.detach) return 0;
  } else {
    ctx.stderr.write(
      `bot ${name} (${started.bot.mode}) submitted to ${api.baseUrl}: ${started.bot.state}, run ${started.run_id}\n`,
    );
  }
  if (flags.detach) {
    ctx.stdout.write(
      `follow it with \`runyard bot logs ${name} -f --build\`; \`runyard bot status ${name}\`\n`,
    );
    return 0;
  }
  if (flags.json) {
    // JSON callers get the start answer, then the bot once it settled.
    const code = await watchStart(api, name, started.run_id, checkSecs, { ...ctx, stdout: ctx.stderr });
    const bot = await api.request<BotView>("GET", botPath(name));
    ctx.stdout.write(`${JSON.stringify(bot)}\n`);
    return code;
  }
  return watchStart(api, name, started.run_id, checkSecs, ctx);
}

/** `runyard bot stop NAME`. */
export async function botStop(name: string, ctx: CliContext): Promise<number> {
  const bot = await apiClient(ctx).request<BotView>("POST", botPath(name, "/stop"));
  ctx.stdout.write(`bot ${bot.name} ${bot.state}\n`);
  return 0;
}

/** `runyard bot rm NAME`: stopped first if it runs; the name is free again. */
export async function botRemove(name: string, ctx: CliContext): Promise<number> {
  const bot = await apiClient(ctx).request<BotView>("DELETE", botPath(name));
  ctx.stdout.write(`bot ${bot.name} ${bot.state}\n`);
  return 0;
}

/** `runyard bot list`. */
export async function botList(flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const { bots } = await apiClient(ctx).request<{ bots: BotView[] }>("GET", "/api/bots");
  return printList(ctx.stdout, bots, {
    json: flags.json,
    empty: "no bots yet; start one with `runyard bot start NAME --simple bot.py`",
    header: ["NAME", "MODE", "STATE", "HEALTH", "VERSION", "UPTIME", "RESTARTS", "MEMORY", "CPU", "IMAGE"],
    row: (bot) => [
      bot.name,
      bot.mode,
      bot.error && bot.state === "crashed" ? `${bot.state} (${bot.error.code})` : bot.state,
      healthCell(bot.health),
      String(bot.version),
      duration(bot.uptime_secs),
      String(bot.restarts),
      showBytes(bot.memory_bytes),
      cpu(bot.cpu_percent),
      bot.image ?? "-",
    ],
  });
}

/** A health report in one cell: its status, and the last probe's first line when it failed. */
function healthCell(health: BotView["health"]): string {
  if (!health) return "-";
  if (health.status === "healthy" || health.failures === 0) return health.status;
  const first = health.output.split("\n").find((line) => line.trim() !== "") ?? "";
  return `${health.status} (${health.failures} failed${first ? `: ${first.slice(0, 40)}` : ""})`;
}

/** `runyard bot status NAME`: the state, how it runs now, and why it ended if it did. */
export async function botStatus(name: string, flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const bot = await apiClient(ctx).request<BotView>("GET", botPath(name));
  if (flags.json) return printJson(ctx.stdout, bot);
  const left = Math.round((Date.parse(bot.expires_at) - Date.now()) / 1000);
  const rows: [string, string][] = [
    ["state", bot.state],
    ["mode", bot.mode],
    ["version", String(bot.version)],
    ["image", bot.image ?? "-"],
    ["runner", bot.runner_id ?? "-"],
    ["uptime", duration(bot.uptime_secs)],
    ["restarts", `${bot.restarts} (policy ${bot.restart_policy})`],
    ["exit code", bot.exit_code === null ? "-" : String(bot.exit_code)],
    ["OOM killed", bot.oom_killed ? "yes" : "no"],
    ["memory", showBytes(bot.memory_bytes)],
    ["cpu", cpu(bot.cpu_percent)],
    ["started", bot.started_at ?? "-"],
    [
      "expires",
      `${bot.expires_at}${left > 0 && !endedStates.has(bot.state) ? ` (in ${duration(left)})` : ""}`,
    ],
  ];
  if (bot.health) {
    rows.push([
      "health",
      `${bot.health.status} (${bot.health.failures} failed in a row, probed ${bot.health.at})`,
    ]);
    rows.push(["last probe", bot.health.output.replace(/\n/g, " | ") || "(no output)"]);
  }
  if (bot.error) {
    rows.push(["error", `${bot.error.code}: ${bot.error.message.split("\n")[0]}`]);
    if (bot.error.hint) rows.push(["hint", bot.error.hint]);
  }
  const width = Math.max(...rows.map(([key]) => key.length));
  ctx.stdout.write(`bot ${printable(bot.name)}\n`);
  for (const [key, value] of rows) ctx.stdout.write(`  ${`${key}:`.padEnd(width + 2)}${printable(value)}\n`);
  if (bot.last_logs && bot.last_logs.length > 0) {
    ctx.stdout.write("  last logs of the previous container:\n");
    for (const line of bot.last_logs) ctx.stdout.write(`    ${line}\n`);
  }
  return 0;
}

/** `--since 10m`, `2h`, `30s`, `1d` or an ISO time, as the ISO time the API takes. */
export function sinceTime(value: string, now = Date.now()): string {
  const relative = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(value.trim());
  if (relative) {
    const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[relative[2] as "s" | "m" | "h" | "d"];
    return new Date(now - Number(relative[1]) * unit * 1000).toISOString();
  }
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at)) {
    throw new RunyardError(
      "USAGE",
      `--since ${value}: expected a duration like 10m, 2h, 30s, 1d, or an ISO time`,
      { hint: "For example --since 10m, or --since 2026-11-22T10:00:00Z." },
    );
  }
  return new Date(at).toISOString();
}

export interface BotLogsFlags {
  tail?: string;
  since?: string;
  follow?: boolean;
  build?: boolean;
  previous?: boolean;
  json?: boolean;
  grep?: string;
  download?: string;
}

/**
 * `runyard bot logs NAME`: the container's output (every container of its current life), the
 * build's with --build, the previous container's last lines with --previous; -f follows on.
 */
export async function botLogs(name: string, flags: BotLogsFlags, ctx: CliContext): Promise<number> {
  if (flags.download !== undefined) return botLogDownload(name, flags.download, ctx);
  const api = apiClient(ctx);
  if (flags.previous) {
    if (flags.follow || flags.build) {
      throw new RunyardError(
        "USAGE",
        "--previous shows lines kept from an ended container: no -f or --build",
        { hint: `Follow the current container with \`runyard bot logs ${name} -f\`.` },
      );
    }
    const bot = await api.request<BotView>("GET", botPath(name));
    const lines = bot.last_logs ?? [];
    if (flags.json) ctx.stdout.write(`${JSON.stringify(lines)}\n`);
    else if (lines.length === 0)
      ctx.stderr.write(`bot ${name} has no previous container's lines (none ended yet)\n`);
    else for (const line of lines) ctx.stdout.write(`${line}\n`);
    return 0;
  }
  const query = new URLSearchParams();
  if (flags.tail !== undefined) {
    const tail = Number(flags.tail);
    if (!Number.isInteger(tail) || tail <= 0) {
      throw new RunyardError("USAGE", `--tail ${flags.tail}: expected a whole number of lines`, {
        hint: "For example --tail 100.",
      });
    }
    query.set("tail", String(tail));
  }
  if (flags.since !== undefined) query.set("since", sinceTime(flags.since));
  if (flags.build) query.set("build", "true");
  if (flags.grep !== undefined) query.set("grep", flags.grep);
  // Listening before the first request: a Ctrl-C at any point ends the watching cleanly.
  const abort = new AbortController();
  const off = flags.follow ? ctx.onInterrupt(() => abort.abort()) : () => undefined;
  try {
    return await printLogs(api, name, query, flags, abort.signal, ctx);
  } finally {
    off();
  }
}

async function printLogs(
  api: ApiClient,
  name: string,
  query: URLSearchParams,
  flags: BotLogsFlags,
  signal: AbortSignal,
  ctx: CliContext,
): Promise<number> {
  const answer = await api.request<BotLogs>(
    "GET",
    botPath(name, `/logs${query.size > 0 ? `?${query}` : ""}`),
  );
  const print = (line: LogLine): void => {
    if (flags.json) ctx.stdout.write(`${JSON.stringify(line)}\n`);
    else (line.stream === "stderr" && !flags.build ? ctx.stderr : ctx.stdout).write(`${line.text}\n`);
  };
  for (const line of answer.lines) print(line);
  if (!flags.follow || !answer.run_id) return 0;
  const steps = flags.build ? ["build", "pull"] : ["run"];
  // Which container a followed line is of: the last listed, then one more per restart.
  let attempt = answer.lines.at(-1)?.attempt ?? 1;
  if (signal.aborted) return 0;
  try {
    await api.events(answer.run_id, {
      after: answer.last_seq,
      follow: true,
      signal,
      onEvent: (event) => {
        if (event.type === "step.started" && steps.includes(event.step)) attempt = event.attempt;
        if (event.type !== "step.output" || !steps.includes(event.step)) return;
        const needle = flags.grep?.toLowerCase();
        for (const text of event.data.replace(/\n$/, "").split("\n")) {
          if (needle !== undefined && !text.toLowerCase().includes(needle)) continue;
          print({ ts: event.ts, stream: event.stream, text, step: event.step, attempt });
        }
      },
    });
  } catch (error) {
    if (!signal.aborted) throw error;
  }
  return 0;
}
