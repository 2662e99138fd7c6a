import type { Config } from "../core/config.js";
import { loadRunConfig, type RunConfig } from "../core/run-config.js";
import { type CliContext, exitCodeForSignal } from "./context.js";
import { terminalSafe } from "./terminal-stream.js";

type Overrides = Partial<Record<keyof Config, unknown>>;

/** How a command's output reaches a terminal: `raw` (`--raw`) keeps every escape sequence of it. */
export interface OutputOptions {
  raw?: boolean;
}

/** The context of a command run from a shell: env, config file and flags, the process's streams and signals. */
export async function processContext(
  overrides: Overrides = {},
  configFile?: string,
  output: OutputOptions = {},
): Promise<CliContext> {
  // The schema (and zod) are loaded here, not at the CLI's start: `runyard run` does without.
  const { loadConfigWithFile } = await import("../core/config-file.js");
  return withProcess(loadConfigWithFile(process.env, overrides, configFile), output);
}

/** The context of `runyard run`: the settings it reads (core/run-config.ts), checked without zod's whole weight. */
export async function runContext(
  overrides: Overrides = {},
  output: OutputOptions = {},
): Promise<CliContext<RunConfig>> {
  return withProcess(await loadRunConfig(process.env, overrides), output);
}

function withProcess<C>(config: C, output: OutputOptions): CliContext<C> {
  const env = process.env;
  return {
    config,
    env,
    cwd: process.cwd(),
    stdin: process.stdin,
    stdout: terminalSafe(process.stdout, output.raw === true),
    stderr: terminalSafe(process.stderr, output.raw === true),
    color: Boolean(process.stdout.isTTY) && !env.NO_COLOR,
    onInterrupt(handler) {
      let count = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        count += 1;
        if (count > 1) process.exit(exitCodeForSignal(signal === "SIGTERM" ? "SIGTERM" : "SIGINT"));
        handler(signal === "SIGTERM" ? "SIGTERM" : "SIGINT");
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      return () => {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      };
    },
  };
}
