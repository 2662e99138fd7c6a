/**
 * The files of a sandbox's /proc that are covered read-only beyond bwrap's own covers and /proc/sys.
 *
 * Under a root runner a step's uid is the host's root to the kernel, and many /proc files check
 * only their mode on a write: /proc/acpi/wakeup (wake-up devices), and on other kernels what a
 * driver adds. bwrap covers four names only (sys, sysrq-trigger, irq, bus), so /proc/mtrr, mode
 * 0644 on a 6.18 kernel, passed a step's `access(W_OK)`. So every file this kernel's /proc has
 * outside the processes' folders, up to four levels down, that its owner alone may write is
 * covered too. Files anyone may write (/proc/pressure/*, whose kernel code checks the caller) are
 * left as they are, as outside a sandbox.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Covered already (bwrap's own, and /proc/sys by the sandbox's arguments), or a process's folder. */
const skipped = new Set(["self", "thread-self", "sys", "sysrq-trigger", "irq", "bus"]);
const deepest = 4;

let found: string[] | undefined;

/** Read once per process: /proc's files are the kernel's, the same for every sandbox. */
export function procFilesToCover(root = "/proc"): string[] {
  if (root === "/proc" && found) return found;
  const files: string[] = [];
  walk(root, 1, files);
  if (root === "/proc") found = files;
  return files;
}

function walk(folder: string, depth: number, files: string[]): void {
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return; // not readable here: nothing under it is covered, as bwrap would not either
  }
  for (const name of names) {
    if (depth === 1 && (skipped.has(name) || /^\d+$/.test(name))) continue;
    const path = join(folder, name);
    let mode: number;
    let isFile: boolean;
    let isFolder: boolean;
    try {
      // Not followed: /proc/net and /proc/mounts lead into the reading process's own folder.
      const stats = lstatSync(path, { throwIfNoEntry: false });
      if (!stats) continue;
      mode = stats.mode;
      isFile = stats.isFile();
      isFolder = stats.isDirectory();
    } catch {
      continue;
    }
    if (isFolder && depth < deepest) walk(path, depth + 1, files);
    else if (isFile && mode & 0o200 && !(mode & 0o002)) files.push(path);
  }
}
