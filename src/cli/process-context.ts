import { type Config, loadConfig } from "../core/config.js";
import { readConfigFile } from "../core/config-file.js";
import { type CliContext, exitCodeForSignal } from "./context.js";

type Overrides = Partial<Record<keyof Config, unknown>>;

/** The context of a command run from a shell: env, config file and flags, the process's streams and signals. */
export function processContext(overrides: Overrides = {}, configFile?: string): CliContext {
  const env = process.env;
  const file = configFile ? readConfigFile(configFile) : undefined;
  const merged: Overrides = { ...file?.overrides };
  for (const [key, value] of Object.entries(overrides))
    if (value !== undefined) merged[key as keyof Config] = value;
  return {
    config: loadConfig(env, merged),
    env,
    cwd: process.cwd(),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
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
