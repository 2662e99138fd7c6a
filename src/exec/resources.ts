import { readdirSync, readFileSync } from "node:fs";

/**
 * Memory and CPU of a process group, sampled from /proc: right after spawn (the leader), every
 * SAMPLE_INTERVAL_MS (every member), and when the leader's output ends (usually a zombie with
 * final times). A process living between two samples may be missed; a long step's figures are close.
 *
 * - memory: the sum of the members' high-water marks (VmHWM) at the best sample.
 * - cpu: the largest total seen of utime + stime + cutime + cstime. A process's time is its own or,
 *   once waited for, its parent's, so nothing counts twice.
 *
 * One timer scans /proc for all watched groups, so concurrent steps share a scan, and a step
 * that ends before the first tick pays for none.
 */

export const SAMPLE_INTERVAL_MS = 100;

/** USER_HZ: /proc reports times in these units on every Linux architecture. */
const CLOCK_TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat that sampling needs. */
export interface ProcStat {
  pid: number;
  /** One letter: R running, S sleeping, Z zombie, ... */
  state: string;
  pgrp: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  cpuTicks: number;
}

/** Parses /proc/<pid>/stat. The command name sits in parentheses and may itself hold spaces and parentheses. */
function parseProcStat(pid: number, text: string): ProcStat | undefined {
  const afterName = text.lastIndexOf(") ");
  if (afterName < 0) return undefined;
  // Fields from the 3rd on: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  const fields = text.slice(afterName + 2).split(" ", 15);
  if (fields.length < 15) return undefined;
  const cpuTicks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return { pid, state: fields[0]!, pgrp: Number(fields[2]), cpuTicks };
}

function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return undefined; // gone already
  }
}

/** Peak resident memory of one process in bytes; 0 for a zombie or a process already gone. */
function readMemoryPeakBytes(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return 0;
  }
  const match = /^VmHWM:\s+(\d+) kB/m.exec(status) ?? /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Every process in /proc whose group is one of `pgids`, by group. */
function scanGroups(pgids: ReadonlySet<number>): Map<number, ProcStat[]> {
  const byGroup = new Map<number, ProcStat[]>();
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return byGroup; // no /proc: no figures
  }
  for (const name of names) {
    const first = name.charCodeAt(0);
    if (first < 48 || first > 57) continue;
    const stat = readProcStat(Number(name));
    if (!stat || !pgids.has(stat.pgrp)) continue;
    const members = byGroup.get(stat.pgrp);
    if (members) members.push(stat);
    else byGroup.set(stat.pgrp, [stat]);
  }
  return byGroup;
}

/** Usage of one process group, built up from samples. */
export class GroupUsage {
  private peakBytes = 0;
  private maxCpuTicks = 0;

  constructor(readonly pgid: number) {}

  get memoryPeakBytes(): number {
    return this.peakBytes;
  }

  get cpuMs(): number {
    return Math.round((this.maxCpuTicks * 1000) / CLOCK_TICKS_PER_SECOND);
  }

  /** Samples the leader alone: two small reads, cheap enough to do for every command. */
  sampleLeader(): void {
    const stat = readProcStat(this.pgid);
    if (!stat || stat.pgrp !== this.pgid) return;
    this.record([stat]);
  }

  record(members: readonly ProcStat[]): void {
    let cpuTicks = 0;
    let bytes = 0;
    for (const member of members) {
      cpuTicks += member.cpuTicks;
      if (member.state !== "Z") bytes += readMemoryPeakBytes(member.pid);
    }
    if (cpuTicks > this.maxCpuTicks) this.maxCpuTicks = cpuTicks;
    if (bytes > this.peakBytes) this.peakBytes = bytes;
  }
}

/** Samples the given groups now, with one scan of /proc. */
export function sampleGroups(usages: Iterable<GroupUsage>): void {
  const byPgid = new Map<number, GroupUsage>();
  for (const usage of usages) byPgid.set(usage.pgid, usage);
  if (byPgid.size === 0) return;
  const members = scanGroups(new Set(byPgid.keys()));
  for (const [pgid, usage] of byPgid) {
    const found = members.get(pgid);
    if (found) usage.record(found);
  }
}

const watched = new Set<GroupUsage>();
let ticker: NodeJS.Timeout | undefined;

/** Samples the group every SAMPLE_INTERVAL_MS until the returned function is called. */
export function watchGroup(usage: GroupUsage): () => void {
  watched.add(usage);
  if (!ticker) {
    ticker = setInterval(() => sampleGroups(watched), SAMPLE_INTERVAL_MS);
    ticker.unref();
  }
  return () => {
    watched.delete(usage);
    if (watched.size === 0 && ticker) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };
}

/**
 * Whether any process of the group is still alive. Zombies do not count: where PID 1 does not
 * reap orphans (some containers), a dead orphan stays in its group for good.
 */
export function groupIsAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  const members = scanGroups(new Set([pgid])).get(pgid) ?? [];
  return members.some((member) => member.state !== "Z");
}

/** Sends `signal` to every process of the group. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: nothing left to signal. EPERM: a member changed its user; nothing more we can do.
  }
}
