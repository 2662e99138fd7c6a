/**
 * The files of a sandbox's /proc that are covered read-only beyond bwrap's own covers and /proc/sys.
 *
 * Under a root runner a step's uid is the host's root to the kernel, and many /proc files check
 * only their mode on a write: /proc/acpi/wakeup (wake-up devices), ALSA's buffers under
 * /proc/asound, and on other kernels what a driver adds. bwrap covers four names only (sys,
 * sysrq-trigger, irq, bus), so /proc/mtrr, mode 0644 on a 6.18 kernel, passed a step's
 * `access(W_OK)`. So every file of this kernel's proc outside the processes' folders, at any depth,
 * that its owner or group may write and others may not is covered too. Not covered:
 * - files anyone may write (/proc/pressure/*, whose kernel code checks the caller), as outside a
 *   sandbox;
 * - what another filesystem mounted under the host's /proc holds (nfsd's /proc/fs/nfsd): a
 *   sandbox's /proc is a fresh proc without it, where bwrap could not bind a cover (and would
 *   refuse to start every sandbox);
 * - what is behind a link (/proc/net is the reading process's own network's: no mount covers it);
 * - what appears after the runner read them (a module loaded later): read once per runner.
 * docs/security.md ("Kernel settings") says what this leaves to a runner that is not root.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Covered already (bwrap's own, and /proc/sys by the sandbox's arguments), or a process's folder. */
const skipped = new Set(["self", "thread-self", "sys", "sysrq-trigger", "irq", "bus"]);

let found: string[] | undefined;

/** Read once per process: /proc's files are the kernel's, the same for every sandbox. */
export function procFilesToCover(root = "/proc"): string[] {
  if (root === "/proc" && found) return found;
  const files: string[] = [];
  const device = lstatSync(root).dev;
  walk(root, device, true, files);
  if (root === "/proc") found = files;
  return files;
}

function walk(folder: string, device: number, top: boolean, files: string[]): void {
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return; // not readable here: nothing under it is covered, as bwrap would not either
  }
  for (const name of names) {
    if (top && (skipped.has(name) || /^\d+$/.test(name))) continue;
    const path = join(folder, name);
    // Not followed: /proc/net and /proc/mounts lead into the reading process's own folder.
    let stats: ReturnType<typeof lstatSync>;
    try {
      stats = lstatSync(path, { throwIfNoEntry: false });
    } catch {
      continue; // an entry the kernel will not describe: nothing a step could open either
    }
    if (!stats || stats.dev !== device) continue;
    if (stats.isDirectory()) walk(path, device, false, files);
    else if (stats.isFile() && stats.mode & 0o220 && !(stats.mode & 0o002)) files.push(path);
  }
}
