import type { Config } from "../core/config.js";
import { RunyardError } from "../core/errors.js";

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

/** The first Ctrl-C / SIGTERM, after which the command stops listening for them. */
export function untilInterrupted(ctx: Pick<CliContext, "onInterrupt">): Promise<InterruptSignal> {
  return new Promise((resolve) => {
    const stop = ctx.onInterrupt((signal) => {
      stop();
      resolve(signal);
    });
  });
}

/**
 * A secret piped to stdin (never one from argv, where `ps` and the shell's history see it),
 * without the one line ending `echo` adds. USAGE with `said.hint` when stdin is a terminal
 * (`said.terminal`) or nothing came (`said.empty`).
 */
export async function pipedSecret(
  stdin: CliContext["stdin"],
  said: { terminal: string; empty: string; hint: string },
): Promise<string> {
  if (stdin.isTTY) throw new RunyardError("USAGE", said.terminal, { hint: said.hint });
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  const secret = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (secret === "") throw new RunyardError("USAGE", said.empty, { hint: said.hint });
  return secret;
}
