import { mkdir, open, readFile, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { RunyardError } from "../core/errors.js";
import { processStartTime } from "../core/pid-lock.js";

/** Runs of this process waiting for a mirror, chained per mirror path. */
const chains = new Map<string, Promise<unknown>>();

/** How long a lock file may stay empty (its owner between create and write) before it is stale. */
const EMPTY_LOCK_GRACE_MS = 10_000;

/**
 * Runs `use` while holding the mirror: first in this process (a promise chain, so eight runs of
 * one runner take turns without touching the disk), then across processes (`<mirror>.lock`,
 * created exclusively, holding the owner's pid and start time). A lock whose owner is dead
 * (crash, kill -9; a reused pid has another start time) is taken over.
 *
 * Fetch, worktree add, remove and prune run under it: git locks single refs, but a fetch that
 * updates many refs beside a worktree add or a prune is where mirrors get corrupted.
 */
export function withMirrorLock<T>(mirror: string, signal: AbortSignal | undefined, use: () => Promise<T>) {
  const previous = chains.get(mirror) ?? Promise.resolve();
  const mine = previous.then(
    () => holdFileLock(`${mirror}.lock`, signal, use),
    () => holdFileLock(`${mirror}.lock`, signal, use),
  );
  const tail = mine.catch(() => undefined);
  chains.set(mirror, tail);
  void tail.then(() => {
    if (chains.get(mirror) === tail) chains.delete(mirror);
  });
  return mine;
}

async function holdFileLock<T>(path: string, signal: AbortSignal | undefined, use: () => Promise<T>) {
  const owner = `${process.pid} ${processStartTime(process.pid) ?? "?"}`;
  await mkdir(dirname(path), { recursive: true });
  for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
    if (signal?.aborted) throw new RunyardError("CANCELED", "canceled while waiting for the repo mirror");
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(owner);
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (await isStale(path)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    // Another runner process fetches into this mirror: it is done within a fetch's time.
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  try {
    return await use();
  } finally {
    try {
      if ((await readFile(path, "utf8")) === owner) await unlink(path);
    } catch {
      // gone already
    }
  }
}

async function isStale(path: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return false; // removed meanwhile: the next attempt creates it
  }
  const [pid, startTime] = text.trim().split(" ");
  if (!pid) {
    const info = await stat(path).catch(() => undefined);
    return info !== undefined && Date.now() - info.mtimeMs > EMPTY_LOCK_GRACE_MS;
  }
  const started = processStartTime(Number(pid));
  if (started === undefined) return !isAlive(Number(pid));
  return startTime !== "?" && started !== startTime;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
