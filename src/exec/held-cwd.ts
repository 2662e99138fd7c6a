import { closeSync, constants, existsSync, fstatSync, openSync, readlinkSync } from "node:fs";
import { nativeHelperPath } from "./native-helpers.js";

/**
 * A command's folder as the runner checked it: its real path and its identity (device and
 * inode), both read from one descriptor, so a link swapped in on the way after the check cannot
 * make them name two different folders. The sandbox mounts the folder by path later; a step
 * beside it could swap the path for a link to a folder it may not see (the server's home) in
 * between, so the command checks inside the sandbox, before it runs, that its folder has this
 * identity (`cwdCheckArgv`).
 */
export interface HeldCwd {
  path: string;
  identity: string;
}

/**
 * The folder `requested` names, held; or why it cannot be, and then nothing may mount it: a
 * folder judged by path alone could be swapped for a link to a hidden one before the mount, and
 * nothing would check inside. A folder whose real path is too long for the kernel to name (a
 * link leading deep into nested folders) is one the runner can open but not judge.
 */
export function holdCwd(requested: string): HeldCwd | { problem: string } {
  let fd: number;
  try {
    fd = openSync(requested, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NONBLOCK);
  } catch (error) {
    return { problem: cwdProblem(requested, error as NodeJS.ErrnoException) };
  }
  try {
    const path = readlinkSync(`/proc/self/fd/${fd}`);
    const info = fstatSync(fd, { bigint: true });
    return { path, identity: `${info.dev}:${info.ino}` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      problem:
        code === "ENAMETOOLONG"
          ? `cwd "${requested}" leads to a folder whose real path is longer than the system can name (4096 bytes)`
          : `cannot read where cwd "${requested}" leads: ${(error as Error).message}`,
    };
  } finally {
    closeSync(fd);
  }
}

function cwdProblem(requested: string, error: NodeJS.ErrnoException): string {
  if (error.code === "ENOENT") return `cwd "${requested}" does not exist`;
  if (error.code === "ENOTDIR") return `cwd "${requested}" is not a folder`;
  if (error.code === "ENAMETOOLONG")
    return `cwd "${requested}" is longer than the system can name (4096 bytes)`;
  return `cannot open cwd "${requested}": ${error.message}`;
}

/** What to do about a cwd `holdCwd` refused. */
export const heldCwdHint =
  "Name an existing folder as the step's cwd, by a path (links resolved) shorter than 4096 bytes, and let no other step remove it or swap it for a file while this one starts.";

/**
 * `argv` run inside the sandbox only when the folder it starts in has `identity`; otherwise it
 * ends 126 saying so. The static checker (native/cwd-check.c), bound read-only at `files`, also
 * loads the step filter (native/step-filter.c) first. Without it, `stat -c %d:%i` prints a bind
 * mount's source identity, as fstat does, by its full path, since the step's own PATH could name
 * a `stat` of its own; and no filter is loaded.
 */
export function cwdCheckArgv(
  argv: readonly string[],
  identity: string,
): { argv: string[]; files: [host: string, inside: string][] } {
  const built = nativeHelperPath("cwd-check");
  if (existsSync(built)) return { argv: [checkerInside, identity, ...argv], files: [[built, checkerInside]] };
  return {
    argv: [
      "/bin/sh",
      "-c",
      '[ "$(/usr/bin/stat -c %d:%i .)" = "$0" ] || { echo "runyard: the step\'s folder was swapped for another while its sandbox was made; nothing ran" >&2; exit 126; }; exec "$@"',
      identity,
      ...argv,
    ],
    files: [],
  };
}

const checkerInside = "/run/runyard-cwd-check";
