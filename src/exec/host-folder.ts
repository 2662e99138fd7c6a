import { constants } from "node:fs";
import { type FileHandle, mkdir, open, readlink } from "node:fs/promises";
import { resolve, sep } from "node:path";

/** Linux's O_PATH (x86 and Arm), which Node's constants leave out: a folder held without reading it. */
export const O_PATH = 0o10000000;
/**
 * A folder held to make and open what it holds: links on the way followed (an operator's
 * `/var/run`); O_PATH, so a part the runner may only pass through (mode 0711) is held too.
 */
const folderFlags = O_PATH | constants.O_DIRECTORY;

/**
 * Opens host folder `path`, making missing parts (0700), for the runner to write into outside any
 * sandbox (`output_path`). The run's steps may write there meanwhile: a part swapped for a link
 * after the check would have the runner, by path, write wherever the link leads. So the walk goes
 * part by part through descriptors (`/proc/self/fd/N/part`), each part's real place read from its
 * descriptor (no later swap changes it) and handed to `refusal` before anything is made inside;
 * the caller creates its files through the returned descriptor. Throws the refusal or system error.
 */
export async function openHostFolder(
  path: string,
  refusal?: (realFolder: string) => string | undefined,
): Promise<FileHandle> {
  let handle = await open("/", folderFlags);
  try {
    for (const part of resolve(path).split(sep).filter(Boolean)) {
      const at = `${fdPath(handle)}/${part}`;
      await mkdir(at, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "EEXIST") throw error;
      });
      const next = await open(at, folderFlags);
      await handle.close();
      handle = next;
      const problem = refusal?.(await readlink(fdPath(handle)));
      if (problem) throw new Error(problem);
    }
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** The path that names what `handle` has open, whatever was renamed or swapped since. */
export function fdPath(handle: FileHandle): string {
  return `/proc/self/fd/${handle.fd}`;
}
