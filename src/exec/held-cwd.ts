import { closeSync, constants, fstatSync, openSync, readlinkSync } from "node:fs";
import { realPath } from "./sandbox.js";

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
  identity?: string;
}

export function holdCwd(requested: string): HeldCwd {
  let fd: number;
  try {
    fd = openSync(requested, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NONBLOCK);
  } catch {
    // Missing or not a folder: judged by path as before, and refused or reported there.
    return { path: realPath(requested) };
  }
  try {
    const path = readlinkSync(`/proc/self/fd/${fd}`);
    const info = fstatSync(fd, { bigint: true });
    return { path, identity: `${info.dev}:${info.ino}` };
  } catch {
    return { path: realPath(requested) };
  } finally {
    closeSync(fd);
  }
}

/**
 * `argv` run inside the sandbox only when the folder it starts in has `identity`; otherwise it
 * ends 126 saying so. `stat -c %d:%i` prints a bind mount's source identity, as fstat did; by
 * its full path, since the step's own PATH could name a `stat` of its own.
 */
export function cwdCheckArgv(argv: readonly string[], identity: string): string[] {
  return [
    "/bin/sh",
    "-c",
    '[ "$(/usr/bin/stat -c %d:%i .)" = "$0" ] || { echo "runyard: the step\'s folder was swapped for another while its sandbox was made; nothing ran" >&2; exit 126; }; exec "$@"',
    identity,
    ...argv,
  ];
}
