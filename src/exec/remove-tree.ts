import { constants, mkdtempSync, rmSync } from "node:fs";
import { lstat, open, readdir, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { fdPath } from "./host-folder.js";

/**
 * Removes `path` and all it holds, never following a link, while other steps of its run still
 * write beside it. `rm -r` walks by path: a step that swaps a folder on the way for a link to one
 * it cannot see (another tenant's files, the runner's home) would have root empty that. Here each
 * folder is opened without following a last link and its entries named through the descriptor
 * (`/proc/self/fd/N/name`): the link is removed, not its target. A file already gone is no error.
 */
export async function removeTree(path: string): Promise<void> {
  await removeEntry(path, 0, { steps: maxSteps });
}

const folderFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A step can swap an entry for another kind a few times while it is removed; then it is left. */
const maxTries = 8;

/**
 * How deep the walk goes: each folder on the way is held open until it is empty, so a step that
 * made its folders thousands deep would have the runner, shared by every run, hold as many
 * descriptors and reach its open-files limit. What lies deeper is left where it is (the run's
 * private folders), as `rm -r` left a path too long to name.
 */
export const maxRemoveDepth = 128;

/**
 * How many entries one removal looks at, retries included: a step that keeps adding to each
 * folder of a deep tree as it is emptied would otherwise have each folder's retries multiply
 * those of the folders below. Past it, what is left stays.
 */
const maxSteps = 1_000_000;

/** Whether the entry is gone; false: it (or something in it) was left. */
async function removeEntry(path: string, depth: number, budget: { steps: number }): Promise<boolean> {
  for (let tries = 0; tries < maxTries; tries++) {
    if (--budget.steps < 0) return false;
    const info = await lstat(path).catch(gone);
    if (info === undefined) return true;
    if (!info.isDirectory()) {
      // unlink removes a link itself; a folder swapped in meanwhile is EISDIR: look again.
      if (await unlink(path).then(done, retryOn("EISDIR", "EPERM"))) return true;
      continue;
    }
    if (depth >= maxRemoveDepth) return false;
    const emptied = await emptyFolder(path, depth, budget);
    if (emptied === "not a folder") continue;
    if (emptied === "left") return false;
    // rmdir never follows a last link: a link swapped in meanwhile is ENOTDIR, removed next try.
    if (await rmdir(path).then(done, retryOn("ENOTDIR", "ENOTEMPTY", "EEXIST"))) return true;
  }
  return false;
}

/** Removes what the folder at `path` holds, through a descriptor of the folder itself. */
async function emptyFolder(
  path: string,
  depth: number,
  budget: { steps: number },
): Promise<"emptied" | "not a folder" | "left"> {
  const handle = await open(path, folderFlags).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ELOOP" || error.code === "ENOTDIR" || error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!handle) return "not a folder";
  try {
    const here = fdPath(handle);
    const names = await readdir(here).catch(() => [] as string[]);
    let left = false;
    for (const name of names) {
      if (!(await removeEntry(`${here}/${name}`, depth + 1, budget))) left = true;
    }
    return left ? "left" : "emptied";
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

/** Private temp folders (0700) of this process, removed when it exits cleanly unless removed before. */
export class ExitRemovedFolders {
  private readonly folders = new Set<string>();

  constructor() {
    process.on("exit", () => {
      for (const folder of this.folders) this.remove(folder);
    });
  }

  /** A new folder under `parent` whose name begins with `prefix`. */
  make(parent: string, prefix: string): string {
    const folder = mkdtempSync(join(parent, prefix));
    this.folders.add(folder);
    return folder;
  }

  /** Left for another to remove. */
  forget(folder: string): void {
    this.folders.delete(folder);
  }

  remove(folder: string): void {
    this.folders.delete(folder);
    try {
      rmSync(folder, { recursive: true, force: true });
    } catch {
      // Something in it the runner may not remove: the OS temp folder is cleaned some day.
    }
  }
}
