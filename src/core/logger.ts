import { type Logger, pino } from "pino";

export type { Logger };

/** How log lines are written: one JSON object a line, or a plain line a person reads. */
export type LogFormat = "json" | "text";

const levelNames: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};

/**
 * One pino JSON line as a plain one: `2026-01-01T00:00:00.000Z WARN  message key=value ...`,
 * the shape systemd's journal and a terminal show well. Values that are not strings or numbers
 * are written as JSON.
 */
export function plainLogLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const { level, time, msg, name: _name, ...fields } = record;
  const when = typeof time === "number" ? new Date(time).toISOString() : "";
  const tag = (levelNames[Number(level)] ?? String(level)).padEnd(5);
  const rest = Object.entries(fields).map(([key, value]) => {
    const text =
      typeof value === "string" || typeof value === "number" ? String(value) : JSON.stringify(value);
    return `${key}=${/\s/.test(text) ? JSON.stringify(text) : text}`;
  });
  return `${[when, tag, typeof msg === "string" ? msg : "", ...rest].filter(Boolean).join(" ")}\n`;
}

/**
 * runyard's structured logger: lines on stderr (stdout belongs to command output), JSON unless
 * `format` is `text`. Child loggers carry ids: `logger.child({ runId })`.
 */
export function createLogger(
  options: { level?: string; name?: string; daemon?: boolean; format?: LogFormat } = {},
): Logger {
  // Daemons write asynchronously: a synchronous write per job line sits on the dispatch path.
  const destination = pino.destination({ dest: 2, sync: !options.daemon });
  if (options.daemon) process.once("exit", () => destination.flushSync());
  const settings = { name: options.name ?? "runyard", level: options.level ?? "info", base: undefined };
  if (options.format !== "text") return pino(settings, destination);
  return pino(settings, { write: (line: string) => destination.write(plainLogLine(line)) });
}

/** A logger that drops everything; for embedding and quiet commands. */
export const silentLogger: Logger = pino({ level: "silent" });
