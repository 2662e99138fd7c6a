import { readFileSync, realpathSync } from "node:fs";
import { basename } from "node:path";

/**
 * Whether freeing a block on the file system of device `dev` (a stat's `dev`) waits for the disk:
 * mounted with `discard` (ext4's or XFS's online discard), each `rmdir` or `unlink` that frees a
 * block waits for the disk's discard of it, 0.2 to 40 ms a folder measured on ext4 here; without it
 * they take microseconds (tmpfs, ext4 as most distributions mount it, `discard=async`). Read from
 * /proc/self/mountinfo once per device; one that cannot be read or is not listed is taken to wait.
 * An ext4 one also by its full options (`ext4Discards`): mountinfo leaves out its superblock's.
 */
export function freesSlowly(dev: number): boolean {
  let known = slow.get(dev);
  if (known === undefined) {
    let table = "";
    try {
      table = readFileSync("/proc/self/mountinfo", "utf8");
    } catch {}
    const numbers = deviceNumbers(dev);
    known = mountDiscards(table, numbers) ?? true;
    if (!known) known = ext4Discards(numbers);
    slow.set(dev, known);
  }
  return known;
}

const slow = new Map<number, boolean>();

/** A stat's `dev` as `major:minor`, as mountinfo writes it (glibc's gnu_dev_major and gnu_dev_minor). */
export function deviceNumbers(dev: number): string {
  const value = BigInt(dev);
  const major = ((value & 0xfff00n) >> 8n) | ((value & 0xfffff00000000000n) >> 32n);
  const minor = (value & 0xffn) | ((value & 0xffffff00000n) >> 12n);
  return `${major}:${minor}`;
}

/**
 * Whether a mount of device `numbers` in `table` (mountinfo's text) discards as it frees: any of
 * its mounts' own or its file system's options is `discard` or `discard=...` but `discard=async`;
 * an overlay is taken to (its upper layer's file system decides, unseen here).
 * Undefined when no line names the device.
 */
export function mountDiscards(table: string, numbers: string): boolean | undefined {
  let found: boolean | undefined;
  for (const line of table.split("\n")) {
    const fields = line.split(" ");
    if (fields[2] !== numbers) continue;
    const separator = fields.indexOf("-", 6);
    const options = [fields[5] ?? "", separator > 0 ? (fields[separator + 3] ?? "") : ""]
      .join(",")
      .split(",");
    // An overlay's (a container's root) freeing is its upper layer's, whose options it does not show.
    if (separator > 0 && fields[separator + 1] === "overlay") return true;
    const discards = options.some(
      (option) => option === "discard" || (option.startsWith("discard=") && option !== "discard=async"),
    );
    found = (found ?? false) || discards;
  }
  return found;
}

/**
 * Whether ext4 on block device `numbers` discards as it frees, by all its options: mountinfo leaves
 * out those its superblock gives by default (`tune2fs -o discard`), /proc/fs/ext4/NAME/options lists
 * them all. False where it is no ext4 on a block device.
 */
export function ext4Discards(numbers: string): boolean {
  try {
    const name = basename(realpathSync(`/sys/dev/block/${numbers}`));
    return readFileSync(`/proc/fs/ext4/${name}/options`, "utf8").split("\n").includes("discard");
  } catch {
    return false;
  }
}
