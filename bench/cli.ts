import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { BenchRow } from "./table.js";

const cli = fileURLToPath(new URL("../../bin/runyard.js", import.meta.url));

function wallMs(args: string[]): number {
  const start = performance.now();
  const result = spawnSync(process.execPath, args, { stdio: "ignore" });
  if (result.status !== 0) throw new Error(`node ${args.join(" ")} exited ${result.status}`);
  return performance.now() - start;
}

/**
 * `runyard --version` against `node -e 0`: what the CLI costs before it does anything. Taken in
 * turns, so drift hits both alike; the ratio is the median of the pairs.
 */
export async function cliStart(): Promise<BenchRow> {
  wallMs([cli, "--version"]);
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < 15; i++) {
    ours.push(wallMs([cli, "--version"]));
    base.push(wallMs(["-e", "0"]));
  }
  const ratios = ours.map((value, i) => value / (base[i] ?? value)).sort((a, b) => a - b);
  const mid = (values: number[]): number => [...values].sort((a, b) => a - b)[7] ?? 0;
  return {
    name: "runyard --version vs node -e 0",
    measured: `${mid(ours).toFixed(0)} ms`,
    baseline: `${mid(base).toFixed(0)} ms`,
    ratio: ratios[7] ?? 0,
    target: "<= 1.2",
  };
}
