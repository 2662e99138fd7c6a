import { readdirSync, readFileSync } from "node:fs";

/** A process as /proc shows it; `start` (clock ticks since boot) tells it apart from a reused pid. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  start: string;
  command: string;
}

function stat(pid: number): { ppid: number; start: string; state: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = text.slice(text.lastIndexOf(") ") + 2).split(" ");
    return { state: fields[0] ?? "", ppid: Number(fields[1]), start: fields[19] ?? "" };
  } catch {
    return undefined;
  }
}

function command(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim().slice(0, 200);
  } catch {
    return "";
  }
}

function livePids(): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);
}

/** `pid` and everything below it, read from /proc now. */
export function processTree(pid: number): ProcessInfo[] {
  const children = new Map<number, ProcessInfo[]>();
  let root: ProcessInfo | undefined;
  for (const each of livePids()) {
    const info = stat(each);
    if (!info || info.state === "Z") continue;
    const entry = { pid: each, ppid: info.ppid, start: info.start, command: command(each) };
    if (each === pid) root = entry;
    children.set(info.ppid, [...(children.get(info.ppid) ?? []), entry]);
  }
  if (!root) return [];
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get((tree[i] as ProcessInfo).pid) ?? []));
  return tree;
}

/** Those of `processes` that still run: same pid and start time, and not a zombie. */
export function stillRunning(processes: readonly ProcessInfo[]): ProcessInfo[] {
  return processes.filter((process) => {
    const now = stat(process.pid);
    return now !== undefined && now.state !== "Z" && now.start === process.start;
  });
}

/** Live processes whose environment holds `name=value` (a step's children inherit it). */
export function processesWithEnv(name: string, value: string): ProcessInfo[] {
  const wanted = `${name}=${value}`;
  const found: ProcessInfo[] = [];
  for (const pid of livePids()) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(wanted)) continue;
    } catch {
      continue; // gone, or not ours to read
    }
    const info = stat(pid);
    if (info && info.state !== "Z")
      found.push({ pid, ppid: info.ppid, start: info.start, command: command(pid) });
  }
  return found;
}
