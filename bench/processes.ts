import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
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

/** What one whole process cost: wall time and CPU time (user + system, its children's included). */
export interface ProcessTimes {
  wallMs: number;
  cpuMs: number;
}

/**
 * Wall and CPU time of one whole process, from spawn to exit, in ms: what a user's shell sees.
 * Its stdout goes to /dev/null (the shell's `> /dev/null`), so no reader in this process paces
 * it. The CPU time is the shell's `times` for its children (user + system of the process and of
 * every descendant it waited for), so on a machine others load it still says what the process
 * itself cost; it is counted in clock ticks (10 ms). Rejects on a non-zero exit.
 */
export function processTimes(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<ProcessTimes> {
  const start = performance.now();
  return new Promise<ProcessTimes>((resolve, reject) => {
    // `times` prints the shell's own user and system time, then its children's.
    const script = '"$@" > /dev/null || exit $?; times';
    const child = spawn("sh", ["-c", script, "sh", command, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += String(chunk);
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + String(chunk)).slice(-2000);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const wallMs = performance.now() - start;
      const children = stdout.trim().split("\n").at(-1) ?? "";
      const seconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
      if (code === 0 && seconds.length === 2)
        resolve({ wallMs, cpuMs: ((seconds[0] ?? 0) + (seconds[1] ?? 0)) * 1000 });
      else reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${stderr}${stdout.slice(-200)}`));
    });
  });
}

/** Medians of two sides' times and of their pair-by-pair ratios. */
export interface Paired {
  a: ProcessTimes;
  b: ProcessTimes;
  /** Median of a/b's CPU times taken pair by pair: pairs taken in turns keep it fair when the machine drifts. */
  cpuRatio: number;
  /** The same of their wall times: what a throughput row is about. */
  wallRatio: number;
}

/**
 * Runs `a` and `b` in turns `runs` times after one warm-up each; medians of each and of a/b.
 * CPU time is what the load others put on a shared machine moves least: `runyard run` waits for
 * its fork-server, so the shell's `times` counts it and the steps it started.
 */
export async function paired(
  runs: number,
  a: () => Promise<ProcessTimes>,
  b: () => Promise<ProcessTimes>,
): Promise<Paired> {
  await a();
  await b();
  const as: ProcessTimes[] = [];
  const bs: ProcessTimes[] = [];
  for (let i = 0; i < runs; i++) {
    as.push(await a());
    bs.push(await b());
  }
  const mid = (values: ProcessTimes[]): ProcessTimes => ({
    wallMs: median(values.map((v) => v.wallMs)),
    cpuMs: median(values.map((v) => v.cpuMs)),
  });
  return {
    a: mid(as),
    b: mid(bs),
    cpuRatio: median(as.map((value, i) => value.cpuMs / (bs[i]?.cpuMs || value.cpuMs))),
    wallRatio: median(as.map((value, i) => value.wallMs / (bs[i]?.wallMs || value.wallMs))),
  };
}

/** "120 ms CPU (340 ms wall)": the CPU figure first, as the ratios are taken on it. */
export function cpuAndWall(times: ProcessTimes): string {
  return `${times.cpuMs.toFixed(0)} ms CPU (${times.wallMs.toFixed(0)} ms wall)`;
}

/** The note of rows whose runyard side is `runyard run`: what its figures count. */
export const runyardRunCpuNote =
  "ratio of CPU time (user + system) of each whole process tree: runyard's Node process, its fork-server and the steps, against the baseline's processes; wall time beside";

/** The note of the `runyard run` throughput row. */
export const runyardRunThroughputNote =
  "ratio of throughput (wall time), as the bytes arrive; CPU beside: of each whole process tree (runyard's Node process, its fork-server and the step's processes; the baseline's processes); 'through sed': the baseline's pipeline into sed prefixing every line (one more process reading and prefixing the output, in C, with no Node start), its ratio to the baseline in brackets";

/**
 * CPU time (user + system, in ms) used so far by process `pid` and every process under it,
 * counting the children each has waited for: the difference of two readings is what the tree
 * spent between them, however busy the rest of the machine is. Clock ticks of 10 ms.
 */
export function treeCpuMs(pid: number): number {
  const ticksPerSecond = 100;
  const parentOf = new Map<number, number>();
  let total = 0;
  const statOf = (id: number): string[] | undefined => {
    try {
      const text = readFileSync(`/proc/${id}/stat`, "utf8");
      // Fields after the command name, which may hold spaces: state is [0], ppid [1], utime [11].
      return text.slice(text.lastIndexOf(")") + 2).split(" ");
    } catch {
      return undefined;
    }
  };
  for (const entry of readdirSync("/proc")) {
    const id = Number(entry);
    if (!Number.isInteger(id)) continue;
    const fields = statOf(id);
    if (fields) parentOf.set(id, Number(fields[1]));
  }
  const inTree = (id: number): boolean => {
    for (let at: number | undefined = id; at && at > 1; at = parentOf.get(at)) if (at === pid) return true;
    return false;
  };
  for (const id of parentOf.keys()) {
    if (!inTree(id)) continue;
    const fields = statOf(id);
    // utime, stime, cutime, cstime
    for (const i of [11, 12, 13, 14]) total += Number(fields?.[i] ?? 0);
  }
  return (total / ticksPerSecond) * 1000;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}
