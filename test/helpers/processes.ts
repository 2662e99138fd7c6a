import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, watch } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * Resolves once `predicate` holds, checking every 20 ms; fails after `timeoutMs`. For what has no
 * event to wait on (another process's state, a count in /proc); a file that appears is
 * `fileAppears`, a child's exit `childExited`.
 */
export async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Resolves once `path` exists, woken by the folder's inotify events (a step's marker, a pid file,
 * a run's `ready`) rather than a poll; `path`'s folder must exist. Fails after `timeoutMs`.
 */
export function fileAppears(path: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const name = basename(path);
    const watcher = watch(dirname(path), (_, changed) => {
      if ((changed === null || changed === name) && existsSync(path)) done();
    });
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`timed out waiting for ${path} to appear`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      watcher.close();
      resolve();
    };
    // Made before the watch began.
    if (existsSync(path)) done();
  });
}

/** Resolves once the child has exited (at once if it has), with its exit code or signal. */
export function childExited(child: ChildProcess): Promise<number | NodeJS.Signals | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode);
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
}

/** Whether the process runs: it exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * The process group on this machine of a running step whose command line names `marker` (a
 * folder of the test's its script names), as the runner journals and signals it; undefined while
 * none runs. A sandboxed step's `$$` is its pid inside its own pid namespace, not the host's, so
 * a test finds the step from outside, as an operator would with `ps`.
 */
export function stepProcessGroup(marker: string): number | undefined {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, "utf8").includes(marker)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      // After the command's name: state, ppid, pgrp.
      const pgrp = Number(stat.slice(stat.lastIndexOf(") ") + 2).split(" ")[2]);
      if (pgrp > 0 && pgrp !== process.pid) return pgrp;
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** Whether `command args` runs and exits 0 (a tool a test needs is there and works). */
export function commandWorks(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills, from the host, the holder (pid 1) of the sandbox whose pid namespace a step printed as
 * `pid:[N]`: what the kernel's OOM killer or an operator's `kill` may do, and no step can (a signal
 * from inside never reaches its namespace's pid 1). Returns the holder's host pid.
 */
export function killSandboxHolder(pidNamespace: string): number {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/ns/pid`) !== pidNamespace) continue;
      // NSpid: its pid in each namespace, the sandbox's last; 1 there is the holder.
      const nspid = /^NSpid:\s+(.*)$/m
        .exec(readFileSync(`/proc/${name}/status`, "latin1"))?.[1]
        ?.split(/\s+/);
      if (nspid?.at(-1) !== "1") continue;
      process.kill(Number(name), "SIGKILL");
      return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no holder of the sandbox with pid namespace ${pidNamespace} runs`);
}

/** The program `pid` runs (its `/proc/PID/exe`), or "" once it is gone. */
export function exeOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

/** The parent of `pid`, or 0 once it is gone. */
export function parentOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]?.split(" ")[1] ?? 0);
  } catch {
    return 0;
  }
}
