import type { Config } from "../core/config.js";

/**
 * What every command gets from the entry point; commands never read process.* themselves.
 * `runyard run` gets the few settings it reads (core/run-config.ts), the others all of them.
 */
export interface CliContext<C = Config> {
  config: C;
  env: Record<string, string | undefined>;
  cwd: string;
  /** What is piped in; `isTTY` when a person types at it (no value can be piped then). */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Colors on: stdout is a TTY and NO_COLOR is unset. */
  color: boolean;
  /** Calls `handler` on Ctrl-C / SIGTERM; returns the function that stops listening. */
  onInterrupt: (handler: (signal: InterruptSignal) => void) => () => void;
}

export type InterruptSignal = "SIGINT" | "SIGTERM";

/** What a daemon stopped by a signal exits with, as a shell reports a process the signal killed. */
export function exitCodeForSignal(signal: InterruptSignal): number {
  return signal === "SIGTERM" ? 143 : 130;
}
