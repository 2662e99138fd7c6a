import { readFileSync } from "node:fs";
import { afterAll, beforeAll } from "vitest";
import { recordCpu } from "./record.js";

/** Clock ticks a second of /proc's times (USER_HZ: 100 on Linux's every architecture we run). */
const ticksPerSecond = 100;

/**
 * The CPU this worker used so far, in seconds: its own (utime, stime) and its reaped children's
 * (cutime, cstime), which hold their own reaped children's in turn: a server's steps count.
 */
function cpuSoFar(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // The fields after the command's closing parenthesis, from the third (state) on.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  return ((utime ?? 0) + (stime ?? 0) + (cutime ?? 0) + (cstime ?? 0)) / ticksPerSecond;
}

// A worker runs its files one after another, so what it used between a file's first hook and its
// last is that file's. Registered before the file's own hooks, so its afterAll runs after theirs:
// the servers and runners they stop are reaped and counted.
let started = 0;
beforeAll(() => {
  started = cpuSoFar();
});
afterAll(() => {
  recordCpu(cpuSoFar() - started);
});
