import { type Logger, pino } from "pino";

export type { Logger };

/**
 * runyard's structured logger: JSON lines on stderr (stdout belongs to command output).
 * Child loggers carry ids: `logger.child({ runId })`.
 */
export function createLogger(options: { level?: string; name?: string; daemon?: boolean } = {}): Logger {
  // Daemons write asynchronously: a synchronous write per job line sits on the dispatch path.
  const destination = pino.destination({ dest: 2, sync: !options.daemon });
  if (options.daemon) process.once("exit", () => destination.flushSync());
  return pino(
    { name: options.name ?? "runyard", level: options.level ?? "info", base: undefined },
    destination,
  );
}

/** A logger that drops everything; for embedding and quiet commands. */
export const silentLogger: Logger = pino({ level: "silent" });
