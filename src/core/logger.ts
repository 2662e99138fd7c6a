import { type Logger, pino } from "pino";

export type { Logger };

/**
 * runyard's structured logger: JSON lines on stderr (stdout belongs to command output).
 * Child loggers carry ids: `logger.child({ runId })`.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    { name: options.name ?? "runyard", level: options.level ?? "info", base: undefined },
    pino.destination({ dest: 2, sync: true }),
  );
}

/** A logger that drops everything; for embedding and quiet commands. */
export const silentLogger: Logger = pino({ level: "silent" });
