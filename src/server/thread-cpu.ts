/**
 * The CPU time one thread of this process has used, on Linux: what a parsing thread's budget is
 * counted in, so a busy machine (or the lane's own low priority) never stops a workflow that was
 * merely waiting for the CPU. Elsewhere there is no per-thread figure and callers count the clock.
 */
import { readFileSync, readlinkSync } from "node:fs";

/** The calling thread's id, as /proc names it, or undefined where there is no /proc. */
export function currentThreadId(): number | undefined {
  try {
    // "PID/task/TID"
    const tid = Number(readlinkSync("/proc/thread-self").split("/").at(-1));
    return Number.isInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc's times: 100 on every Linux build Node runs on. */
const ticksPerSecond = 100;

/** Milliseconds of CPU (user and system) thread `tid` of this process has used, if it is known. */
export function threadCpuMs(tid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    // Fields after the command's closing parenthesis: state is the 3rd, utime the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / ticksPerSecond : undefined;
  } catch {
    return undefined;
  }
}
