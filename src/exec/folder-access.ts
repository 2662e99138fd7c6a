import { constants } from "node:fs";
import { type FileHandle, lstat, open, readdir, readlink, realpath } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import { fdPath } from "./host-folder.js";

/**
 * `chmod -R a+rwX` (or `a+rX` without `write`), links left alone, a missing folder skipped: for
 * folders a root runner made for an agent container running as nobody, inside the runner's
 * private home, so no other user reaches them.
 *
 * A sandboxed agent may write there meanwhile (a mirror another run's container mounts): a folder
 * swapped for a link to `/etc` between listing and chmod must not make root open `/etc`'s files.
 * So each file is changed through a descriptor opened without following a last link, only where
 * the kernel says it lies inside the folder; a folder leading outside is not walked.
 */
export async function openToAll(folder: string, write: boolean): Promise<void> {
  const root = await realpath(folder).catch(() => undefined);
  if (root !== undefined) await visit(root, root, write);
}

async function visit(root: string, path: string, write: boolean): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (!info || info.isSymbolicLink()) return;
  const isFolder = info.isDirectory();
  if (wantedMode(info.mode, isFolder, write) !== (info.mode & 0o7777)) await openUp(root, path, write);
  if (!isFolder) return;
  const real = await realpath(path).catch(() => undefined);
  if (real === undefined || !isWithin(real, root)) return;
  const names = await readdir(path).catch(() => [] as string[]);
  for (const name of names) await visit(root, join(path, name), write);
}

/** Changes the mode of the file at `path` if, opened, it lies inside `root`. */
async function openUp(root: string, path: string, write: boolean): Promise<void> {
  let handle: FileHandle;
  try {
    // Never blocks (a FIFO), never follows a last link; a socket cannot be opened and is skipped.
    handle = await open(
      path,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
  } catch {
    return;
  }
  try {
    // Where the opened file really is, whatever a link on its way pointed to.
    const real = await readlink(fdPath(handle));
    if (!isWithin(real, root)) return;
    const info = await handle.stat();
    const wanted = wantedMode(info.mode, info.isDirectory(), write);
    if (wanted !== (info.mode & 0o7777)) await handle.chmod(wanted);
  } catch {
    // Gone meanwhile, or no /proc to say where it is: left as it was.
  } finally {
    await handle.close();
  }
}

function wantedMode(mode: number, isFolder: boolean, write: boolean): number {
  const current = mode & 0o7777;
  const executable = isFolder || (current & 0o111) !== 0;
  return current | 0o444 | (write ? 0o222 : 0) | (executable ? 0o111 : 0);
}

/** Whether `path` is `folder` or lies inside it, by name. */
export function isWithin(path: string, folder: string): boolean {
  const inside = relative(folder, path);
  return inside === "" || (inside !== ".." && !inside.startsWith(`..${sep}`) && !isAbsolute(inside));
}
