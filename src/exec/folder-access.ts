import { chmod, readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * `chmod -R a+rwX` (or `a+rX` without `write`) of a folder and what it holds, links left alone;
 * a folder that is gone is skipped. For folders a root runner made for a sandboxed agent whose
 * container runs as nobody: they lie in the runner's private home, so no other user of the
 * machine reaches them through it.
 */
export async function openToAll(folder: string, write: boolean): Promise<void> {
  const info = await stat(folder).catch(() => undefined);
  if (!info) return;
  await open(folder, info.isDirectory(), info.mode, write);
  if (!info.isDirectory()) return;
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (entry.isSymbolicLink()) continue;
    const path = join(entry.parentPath ?? entry.path, entry.name);
    const current = await stat(path).catch(() => undefined);
    if (current) await open(path, entry.isDirectory(), current.mode, write);
  }
}

async function open(path: string, isFolder: boolean, mode: number, write: boolean): Promise<void> {
  const current = mode & 0o7777;
  const executable = isFolder || (current & 0o111) !== 0;
  const wanted = current | 0o444 | (write ? 0o222 : 0) | (executable ? 0o111 : 0);
  if (wanted !== current) await chmod(path, wanted).catch(() => {});
}
