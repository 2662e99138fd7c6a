import { mkdir, open, readFile, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { RunyardError } from "../core/errors.js";
import { processStartTime } from "../core/pid-lock.js";

/** Runs of this process waiting for a mirror, chained per mirror path. */
const chains = new Map<string, Promise<unknown>>();

/** How long a lock file may stay empty (its owner between create and write) before it is stale. */
const EMPTY_LOCK_GRACE_MS = 10_000;

/**
 * Runs `use` holding the mirror: first in this process (a promise chain, so a runner's eight runs take turns
 * off disk), then across processes (`<mirror>.lock`, created exclusively with the owner's pid and start
 * time); a dead owner's lock (crash, kill -9; a reused pid has another start time) is taken over.
 *
 * Fetch, worktree add, remove and prune run under it: git locks single refs, but a many-ref fetch beside a
 * worktree add or a prune is where mirrors get corrupted.
 */
export interface MirrorLockWait {
  signal?: AbortSignal;
  /** Told once when another process holds the mirror, with its pid: a line for the run's log. */
  onWaiting?: (pid: number) => void;
}

export async function withMirrorLock<T>(
  mirror: string,
  wait: MirrorLockWait,
  use: () => Promise<T>,
): Promise<T> {
  const previous = chains.get(mirror) ?? Promise.resolve();
  let done = () => {};
  const mine = new Promise<void>((resolve) => {
    done = resolve;
  });
  // Chained after the previous run too: one canceled while waiting does not let the next in early.
  const tail = previous.then(() => mine);
  chains.set(mirror, tail);
  try {
    await untilAborted(previous, wait.signal);
    return await holdFileLock(`${mirror}.lock`, wait, use);
  } finally {
    done();
    void tail.then(() => {
      if (chains.get(mirror) === tail) chains.delete(mirror);
    });
  }
}

function untilAborted(promise: Promise<unknown>, signal: AbortSignal | undefined): Promise<unknown> {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const canceled = () => reject(new RunyardError("CANCELED", "canceled while waiting for the repo mirror"));
    if (signal.aborted) return canceled();
    signal.addEventListener("abort", canceled, { once: true });
    void promise.then((value) => {
      signal.removeEventListener("abort", canceled);
      resolve(value);
    });
  });
}

async function holdFileLock<T>(path: string, wait: MirrorLockWait, use: () => Promise<T>) {
  const owner = `${process.pid} ${processStartTime(process.pid) ?? "?"}`;
  await mkdir(dirname(path), { recursive: true });
  let told = false;
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    if (wait.signal?.aborted)
      throw new RunyardError("CANCELED", "canceled while waiting for the repo mirror");
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(owner);
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = await lockHolder(path);
    if (holder?.stale !== undefined) {
      await removeStale(path, holder.stale);
      continue;
    }
    if (!told && holder !== undefined) wait.onWaiting?.(holder.pid);
    told ||= holder !== undefined;
    // Another runner process fetches into this mirror: it is done within a fetch's time.
    await new Promise((resolve) => setTimeout(resolve, delay));
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

/** A live holder's pid, `stale` (the file's text) if dead, undefined if unknown (no file, not yet written). */
async function lockHolder(
  path: string,
): Promise<{ pid: number; stale?: undefined } | { stale: string } | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined; // removed meanwhile: the next attempt creates it
  }
  const [pid, startTime] = text.trim().split(" ");
  if (!pid) {
    const info = await stat(path).catch(() => undefined);
    return info !== undefined && Date.now() - info.mtimeMs > EMPTY_LOCK_GRACE_MS
      ? { stale: text }
      : undefined;
  }
  const started = processStartTime(Number(pid));
  const dead = started === undefined ? !isAlive(Number(pid)) : startTime !== "?" && started !== startTime;
  return dead ? { stale: text } : { pid: Number(pid) };
}

/**
 * Removes a stale lock unless another process took it over: of two that found it stale, the second must
 * not remove the first's new lock. Re-reading the text just before the unlink narrows that to one syscall.
 */
async function removeStale(path: string, staleText: string): Promise<void> {
  try {
    if ((await readFile(path, "utf8")) === staleText) await unlink(path);
  } catch {
    // gone already: the next attempt creates it
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
