import { accessSync, constants } from "node:fs";
import { nativeHelperPath } from "./native-helpers.js";
import { ForkServerLauncher } from "./process/fork-server.js";
import { ProcessExecutor, type ProcessExecutorOptions } from "./process/process.js";
import { SpawnLauncher } from "./process/spawn-launcher.js";
import type { ProcessGroupWatch, ProcessLauncher } from "./types.js";

export interface ExecutorConfig extends ProcessExecutorOptions {
  /** Hears of every process group started and ended (the runner's orphan guard). */
  watch?: ProcessGroupWatch;
  /** How long the fork-server gives steps between SIGTERM and SIGKILL when its runner dies. */
  killGraceMs?: number;
  /**
   * How processes start: "auto" (the default) uses the fork-server where it was built and
   * falls back to Node's spawn, with a warning once; "spawn" always uses Node's spawn.
   */
  launcher?: "auto" | "spawn";
  /** The fork-server binary; native/build/fork-server of this package by default. */
  forkServerPath?: string;
  /** Where the warning about a missing or broken fork-server goes; stderr by default. */
  onWarning?: (message: string) => void;
}

let warned = false;
function warnOnce(message: string): void {
  if (warned) return;
  warned = true;
  process.stderr.write(`runyard: ${message}\n`);
}

/** The one place an executor is built: process groups on this machine. */
export function createExecutor(config: ExecutorConfig): ProcessExecutor {
  return new ProcessExecutor(createLauncher(config), config);
}

function createLauncher(config: ExecutorConfig): ProcessLauncher {
  const spawnLauncher = new SpawnLauncher(config.watch);
  if (config.launcher === "spawn") return spawnLauncher;
  const warn = config.onWarning ?? warnOnce;
  const path = config.forkServerPath ?? nativeHelperPath("fork-server");
  try {
    accessSync(path, constants.X_OK);
  } catch {
    warn(
      `no fork-server at ${path} (npm install compiles it with cc); starting steps with Node's spawn, which is slower`,
    );
    return spawnLauncher;
  }
  return new ForkServerLauncher(path, spawnLauncher, {
    killGraceMs: config.killGraceMs ?? 5000,
    ...(config.watch ? { watch: config.watch } : {}),
    onBroken: (reason) => warn(`${reason}; starting steps with Node's spawn from now on`),
  });
}
