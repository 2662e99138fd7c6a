import type { Config } from "../core/config.js";

/** What every command gets from the entry point; commands never read process.* themselves. */
export interface CliContext {
  config: Config;
  env: Record<string, string | undefined>;
  cwd: string;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Colors on: stdout is a TTY and NO_COLOR is unset. */
  color: boolean;
  /** Calls `handler` on Ctrl-C / SIGTERM; returns the function that stops listening. */
  onInterrupt: (handler: () => void) => () => void;
}
