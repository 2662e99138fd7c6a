import { execFileSync } from "node:child_process";
import { chownSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/** The device nodes bwrap's `--dev` shows, with their numbers. */
export const DEVICE_NODES = [
  ["null", 1, 3],
  ["zero", 1, 5],
  ["full", 1, 7],
  ["random", 1, 8],
  ["urandom", 1, 9],
  ["tty", 5, 0],
] as const;

/** The host's `nobody`: the owner of the runner's own nodes, no step's uid outside its sandbox. */
const owner = 65534;

/**
 * Device nodes of a root runner's own in `folder`, owned by nobody, read and written by all, for
 * its sandboxes' /dev in place of the host's. A sandboxed step of a root runner is the host's root
 * by uid, and so the owner of the host's /dev/null that bwrap's `--dev` binds: it could chmod it
 * (`chmod 0 /dev/null` breaks the machine) or touch it. Of these it is no owner: a chmod is
 * refused; writing to a device, all it needs, works. Returns the folder, or why there is none.
 */
export function ownDeviceNodes(folder: string): string | { problem: string } {
  try {
    // Kept from the runner's last start when each is still what it made: no mknod on the way up.
    if (DEVICE_NODES.every(([name, major, minor]) => isOwnNode(join(folder, name), major, minor)))
      return folder;
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder, { mode: 0o755 });
    // Node has no mknod; coreutils' does. One shell makes all six: a process forked from the runner
    // copies its page tables, several times the cost of one forked from a shell.
    execFileSync(
      "sh",
      [
        "-c",
        'set -e; while [ "$#" -gt 0 ]; do mknod -m 666 "$1" c "$2" "$3"; shift 3; done',
        "sh",
        ...DEVICE_NODES.flatMap(([name, major, minor]) => [join(folder, name), String(major), String(minor)]),
      ],
      { stdio: "ignore" },
    );
    for (const [name] of DEVICE_NODES) {
      const path = join(folder, name);
      chownSync(path, owner, owner);
      if (!lstatSync(path).isCharacterDevice()) return { problem: `${path} is not a device node` };
    }
    return folder;
  } catch (error) {
    return { problem: `cannot make device nodes in ${folder}: ${(error as Error).message}` };
  }
}

function isOwnNode(path: string, major: number, minor: number): boolean {
  const info = lstatSync(path, { throwIfNoEntry: false });
  return (
    info?.isCharacterDevice() === true &&
    info.rdev === major * 256 + minor &&
    info.uid === owner &&
    (info.mode & 0o7777) === 0o666
  );
}
