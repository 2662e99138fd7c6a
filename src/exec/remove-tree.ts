import { constants } from "node:fs";
import { lstat, open, readdir, rmdir, unlink } from "node:fs/promises";

/**
 * Removes `path` and, where it is a folder, all it holds, never following a link: for what a
 * step made while other steps of its run still write beside it. `rm -r` walks by path, so a step
 * that swaps a folder on the way for a link to a folder it cannot see (another tenant's files,
 * the runner's home) while the runner, as root, removes it, would have the runner empty that
 * folder. Here each folder is opened without following a last link, and what it holds is named
 * through that descriptor (`/proc/self/fd/N/name`), so a swap on the way changes nothing: the
 * link is removed, not what it points to. A file already gone is no error.
 */
export async function removeTree(path: string): Promise<void> {
  await removeEntry(path);
}

const folderFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A step can swap an entry for another kind a few times while it is removed; then it is left. */
const maxTries = 8;

async function removeEntry(path: string): Promise<void> {
  for (let tries = 0; tries < maxTries; tries++) {
    const info = await lstat(path).catch(gone);
    if (info === undefined) return;
    if (!info.isDirectory()) {
      // unlink removes a link itself; a folder swapped in meanwhile is EISDIR: look again.
      if (await unlink(path).then(done, retryOn("EISDIR", "EPERM"))) return;
      continue;
    }
    const emptied = await emptyFolder(path);
    if (emptied === "not a folder") continue;
    // rmdir never follows a last link: a link swapped in meanwhile is ENOTDIR, removed next try.
    if (await rmdir(path).then(done, retryOn("ENOTDIR", "ENOTEMPTY", "EEXIST"))) return;
  }
}

/** Removes what the folder at `path` holds, through a descriptor of the folder itself. */
async function emptyFolder(path: string): Promise<"emptied" | "not a folder"> {
  const handle = await open(path, folderFlags).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ELOOP" || error.code === "ENOTDIR" || error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!handle) return "not a folder";
  try {
    const here = `/proc/self/fd/${handle.fd}`;
    const names = await readdir(here).catch(() => [] as string[]);
    for (const name of names) await removeEntry(`${here}/${name}`);
    return "emptied";
  } finally {
    await handle.close();
  }
}

function gone(error: NodeJS.ErrnoException): undefined {
  if (error.code === "ENOENT") return undefined;
  throw error;
}

const done = (): boolean => true;

/** False (try again) on the codes a swap causes; true when it is gone; throws on anything else. */
function retryOn(...codes: string[]): (error: NodeJS.ErrnoException) => boolean {
  return (error) => {
    if (error.code === "ENOENT") return true;
    if (error.code && codes.includes(error.code)) return false;
    throw error;
  };
}
