import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The built CLI, as a user's shell starts it (`dist/` must be built: `npx tsc -p tsconfig.build.json`). */
export const cli = fileURLToPath(new URL("../../bin/runyard.js", import.meta.url));

/** A fresh temp folder for one scenario's files. */
export function benchDir(): string {
  return mkdtempSync(join(tmpdir(), "runyard-bench-"));
}

/** Writes `text` to `name` in a fresh temp folder; returns its path. */
export function benchFile(name: string, text: string): string {
  const path = join(benchDir(), name);
  writeFileSync(path, text);
  return path;
}

/**
 * Wall time of one whole process, from spawn to exit, in ms: what a user's shell sees. Its
 * stdout goes to /dev/null (the shell's `> /dev/null`), so no reader in this process paces it.
 * Rejects on a non-zero exit.
 */
export function processMs(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const devNull = openSync("/dev/null", "w");
  const start = performance.now();
  return new Promise<number>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", devNull, "pipe"], env });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + String(chunk)).slice(-2000);
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const ms = performance.now() - start;
      if (code === 0) resolve(ms);
      else reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${stderr}`));
    });
  }).finally(() => closeSync(devNull));
}

/** Medians of two sides and of their pair-by-pair ratio. */
export interface Paired {
  a: number;
  b: number;
  /** Median of a/b taken pair by pair: pairs taken in turns keep it fair when the machine drifts. */
  ratio: number;
}

/** Runs `a` and `b` in turns `runs` times after one warm-up each; medians of each and of a/b. */
export async function paired(
  runs: number,
  a: () => Promise<number>,
  b: () => Promise<number>,
): Promise<Paired> {
  await a();
  await b();
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < runs; i++) {
    as.push(await a());
    bs.push(await b());
  }
  return { a: median(as), b: median(bs), ratio: median(as.map((value, i) => value / (bs[i] ?? value))) };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}
