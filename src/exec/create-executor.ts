import { ProcessExecutor } from "./process.js";
import { SpawnLauncher } from "./spawn-launcher.js";
import type { ProcessGroupWatch } from "./types.js";

export interface ExecutorConfig {
  /** The host's environment; runyard's own credentials are taken out of it and masked. */
  baseEnv: Record<string, string | undefined>;
  /** Where the private scratch folder goes; the OS temp folder by default. */
  tmpDir?: string;
  /** Hears of every process group started and ended (the runner's orphan guard). */
  watch?: ProcessGroupWatch;
}

/** The one place an executor is built: process groups on this machine. */
export function createExecutor(config: ExecutorConfig): ProcessExecutor {
  return new ProcessExecutor(new SpawnLauncher(config.watch), config);
}
