import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RunSandboxLayout } from "../../src/exec/sandbox/run-sandbox.js";

/**
 * A run's folders as a runner lays them out under `root`, made: its own folder under `runs/`, its
 * /tmp, `$HOME` and outputs under `state/` (the runner's own, hidden from steps).
 */
export function runLayoutIn(root: string, name: string): RunSandboxLayout {
  const folder = join(root, "runs", name);
  const tmp = join(root, "state", name, "tmp");
  const home = join(root, "state", name, "home");
  const outputs = join(root, "state", name, "outputs");
  for (const each of [folder, tmp, home, outputs]) mkdirSync(each, { recursive: true });
  return { folder, scratch: [outputs], tmp, home: "/home/runner", homeFolder: home, runnerMadeCwd: true };
}
