import { randomUUID } from "node:crypto";
import {
  chmod,
  close,
  closeSync,
  constants,
  lstat,
  lstatSync,
  mkdtempSync,
  open,
  openSync,
  readdir,
  readdirSync,
  rename,
  rmdir,
  rmdirSync,
  rmSync,
  Stats,
  unlink,
} from "node:fs";
import { join } from "node:path";
import { freesSlowly } from "./discarding-mounts.js";
import { O_PATH } from "./host-folder.js";

/**
 * Removes `path` and all it holds, never following a link, while other steps of its run still
 * write beside it. `rm -r` walks by path: a step that swaps a folder on the way for a link to one
 * it cannot see (another tenant's files, the runner's home) would have root empty that. Here each
 * folder is opened without following a last link and its entries named through the descriptor
 * (`/proc/self/fd/N/name`, as bytes where it is not UTF-8): the link is removed, not its
 * target. A file already gone is no error. A folder deeper than `maxRemoveDepth` is moved up into
 * `path` and walked from there, so no depth is left, nor a path longer than the kernel names.
 * False when something was left (swapped back and forth, past `maxSteps`).
 *
 * The calls that only look (lstat, open, readdir, close) are made on the event loop, the first
 * `syncCalls` of them: a run's folders after a trivial step hold a few entries, and handing each
 * call to libuv's pool and back cost more CPU than the call (65 against 12 to 27 µs a call
 * measured here), while a step's large tree (a `node_modules`) still leaves the loop free after
 * the first few hundred. A small folder's rmdir joins them where freeing waits for nothing
 * (`freesQuickly`); on a file system mounted with `discard` each waits for the disk (0.2 to 40 ms
 * a folder, measured on ext4 here), and it goes to the pool (`freesSlowly`, by the top entry's
 * device), as every unlink does.
 */
export async function removeTree(path: string): Promise<boolean> {
  const walk = removeEntry(path, 0, { steps: maxSteps, moved: 0 });
  let next = walk.next();
  let freesOnLoop: boolean | undefined;
  // Each call made here counts, and each name a folder listed here (the calls its entries will take).
  for (let spent = 0; !next.done; spent++) {
    const call = next.value;
    const onLoop =
      (isLook(call) || (freesOnLoop === true && freesQuickly(call))) &&
      spent < syncCalls &&
      !(call.call === "readdir" && call.large);
    const answer = onLoop ? callSync(call) : await callAsync(call);
    if (Array.isArray(answer.value)) spent += answer.value.length;
    // The walk's first call is the top entry's lstat.
    if (freesOnLoop === undefined && answer.value instanceof Stats)
      freesOnLoop = !freesSlowly(answer.value.dev);
    next = walk.next(answer);
  }
  return next.value;
}

/** The calls and listed names one removal takes on the event loop before it goes on through libuv's pool. */
export const syncCalls = 256;

/**
 * A folder larger than this (its size as lstat says it: on ext4 some 2,000 names) is listed
 * through the pool, whatever was spent: 200,000 names kept the loop 0.3 to 0.9 s in one
 * readdirSync on a loaded 2-core host, against 8 to 15 ms at most through the pool.
 */
const syncListingBytes = 64 * 1024;

const folderFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A folder opened to be named, not read (O_PATH), its last link not followed. */
const pathFlags = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** A step can swap an entry for another kind a few times while it is removed; then it is left. */
const maxTries = 8;

/**
 * How deep the walk goes: each folder on the way is held open until it is empty, so a step that
 * made its folders thousands deep would have the runner, shared by every run, hold as many
 * descriptors and reach its open-files limit. A folder deeper is moved up into the top folder
 * and walked again from there: `rm -r` by path cannot name a path longer than PATH_MAX, and a
 * step's tree deeper than that was left, for the runner's next start to fail on (run-folders.ts).
 */
export const maxRemoveDepth = 128;

/**
 * How many entries one removal looks at, retries included: a step that keeps adding to each
 * folder of a deep tree as it is emptied would otherwise have each folder's retries multiply
 * those of the folders below. Past it, what is left stays.
 */
const maxSteps = 1_000_000;

/** What one removal has left to spend, and where it moves what lies too deep (`removeEntry`). */
interface Budget {
  steps: number;
  /** The top folder's descriptor path while it is emptied. */
  top?: string;
  /** How many folders were moved up into `top`. */
  moved: number;
}

/** One system call the walk asks for; the driver (`removeTree`) makes it now or on the pool. */
type Call =
  | { call: "rmdir"; path: Path; large?: boolean }
  | { call: "unlink"; path: Path }
  | { call: "chmod"; path: string }
  | { call: "rename"; path: Path; to: string }
  | Look;

/** The calls made on the event loop (`removeTree`). */
type Look =
  | { call: "lstat"; path: Path }
  | { call: "open"; path: Path; flags?: number }
  | { call: "readdir"; path: Path; bytes?: boolean; large?: boolean }
  | { call: "close"; fd: number };

/** A path as given, or as listed through a descriptor: the entry's name its bytes, UTF-8 or not. */
type Path = string | Buffer;

/** What a call gave: its value, or the error it failed with. */
type Answer = { value?: Stats | string[] | Buffer[] | number; error?: NodeJS.ErrnoException };

type Walk<T> = Generator<Call, T, Answer>;

/**
 * The calls that free space and may be made on the event loop where freeing waits for nothing: a
 * folder's own `rmdir` (it is empty by then; one that grew large keeps its size, and goes to the
 * pool). Never a file's `unlink`: freeing a 2 GiB file took 0.7 s on a tmpfs here, and a step
 * chooses its files' sizes (and may swap one in after its lstat).
 */
function freesQuickly(call: Call): call is { call: "rmdir"; path: Path } {
  return call.call === "rmdir" && !call.large;
}

function isLook(call: Call): call is Look {
  return call.call !== "rmdir" && call.call !== "unlink" && call.call !== "rename" && call.call !== "chmod";
}

function callSync(call: Look | { call: "rmdir"; path: Path }): Answer {
  try {
    switch (call.call) {
      case "rmdir":
        rmdirSync(call.path);
        return {};
      case "lstat":
        return { value: lstatSync(call.path) };
      case "readdir":
        return {
          value: call.bytes ? readdirSync(call.path, { encoding: "buffer" }) : readdirSync(call.path),
        };
      case "open":
        return { value: openSync(call.path, call.flags ?? folderFlags) };
      case "close":
        closeSync(call.fd);
        return {};
    }
  } catch (error) {
    return { error: error as NodeJS.ErrnoException };
  }
}

function callAsync(call: Call): Promise<Answer> {
  return new Promise((resolve) => {
    const answer = (
      error: NodeJS.ErrnoException | null,
      value?: Stats | string[] | Buffer[] | number,
    ): void => resolve(error ? { error } : { value });
    switch (call.call) {
      case "lstat":
        return lstat(call.path, answer);
      case "unlink":
        return unlink(call.path, answer);
      case "rmdir":
        return rmdir(call.path, answer);
      case "rename":
        return rename(call.path, call.to, answer);
      case "chmod":
        return chmod(call.path, 0o700, answer);
      case "readdir":
        return call.bytes ? readdir(call.path, { encoding: "buffer" }, answer) : readdir(call.path, answer);
      case "open":
        return open(call.path, call.flags ?? folderFlags, answer);
      case "close":
        return close(call.fd, answer);
    }
  });
}

/** The call's value; its error thrown. */
function* ask<T>(call: Call): Walk<T> {
  const { value, error } = yield call;
  if (error) throw error;
  return value as T;
}

/** The error the call failed with, or undefined when it succeeded. */
function* tryCall(call: Call): Walk<NodeJS.ErrnoException | undefined> {
  const { error } = yield call;
  return error;
}

/** Whether the entry is gone; false: it (or something in it) was left. */
function* removeEntry(path: Path, depth: number, budget: Budget): Walk<boolean> {
  for (let tries = 0; tries < maxTries; tries++) {
    if (--budget.steps < 0) return false;
    const { value, error } = yield { call: "lstat", path };
    if (error?.code === "ENOENT") return true;
    if (error) throw error;
    if (!(value as Stats).isDirectory()) {
      // unlink removes a link itself; a folder swapped in meanwhile is EISDIR: look again.
      if (settled(yield* tryCall({ call: "unlink", path }), "EISDIR", "EPERM")) return true;
      continue;
    }
    if (depth >= maxRemoveDepth) {
      // Moved up into the top folder, whose walk lists it again (`emptyFolder`): a step's tree
      // thousands deep costs no more descriptors. rename moves a link swapped in, never its target.
      if (budget.top === undefined) return false;
      const to = `${budget.top}/.removed-deeper-${randomUUID()}`;
      if ((yield* tryCall({ call: "rename", path, to })) !== undefined) return false;
      budget.moved++;
      return true;
    }
    const emptied = yield* emptyFolder(path, depth, budget, value as Stats);
    if (emptied === "not a folder") continue;
    if (emptied === "left") return false;
    // rmdir never follows a last link: a link swapped in meanwhile is ENOTDIR, removed next try.
    const large = (value as Stats).size > syncListingBytes;
    if (settled(yield* tryCall({ call: "rmdir", path, large }), "ENOTDIR", "ENOTEMPTY", "EEXIST"))
      return true;
  }
  return false;
}

/** Removes what the folder at `path` holds, through a descriptor of the folder itself. */
function* emptyFolder(
  path: Path,
  depth: number,
  budget: Budget,
  info: Stats,
): Walk<"emptied" | "not a folder" | "left"> {
  const large = info.size > syncListingBytes;
  let opened = yield { call: "open", path };
  if (opened.error?.code === "EACCES") {
    // A folder its step made unreadable (chmod 000), the runner not root: given back 0700 through
    // a descriptor of the folder itself (O_PATH, no link followed), then opened again.
    const held = yield { call: "open", path, flags: pathFlags };
    if (held.error === undefined) {
      yield* tryCall({ call: "chmod", path: `/proc/self/fd/${held.value}` });
      yield* ask({ call: "close", fd: held.value as number });
      opened = yield { call: "open", path };
    }
  }
  const { value, error } = opened;
  if (error) {
    if (error.code === "ELOOP" || error.code === "ENOTDIR" || error.code === "ENOENT") return "not a folder";
    throw error;
  }
  const fd = value as number;
  try {
    const here = `/proc/self/fd/${fd}`;
    // Its entries go only where it is writable and searchable (a step's chmod 500).
    if ((info.mode & 0o300) !== 0o300) yield* tryCall({ call: "chmod", path: here });
    if (depth === 0) budget.top = here;
    let left = false;
    // The top folder is listed again while folders too deep were moved up into it meanwhile.
    for (let moved = -1; moved !== budget.moved; ) {
      moved = budget.moved;
      left = false;
      let names = ((yield { call: "readdir", path: here, large }).value ?? []) as Array<string | Buffer>;
      // A name not UTF-8 reads as U+FFFD, naming no entry: that folder listed again as bytes
      // (200,000 names took 0.8 to 1.4 s as Buffers, 0.25 to 0.5 s as strings, on a loaded 2-core host).
      if (names.some((name) => (name as string).includes("\uFFFD")))
        names = ((yield { call: "readdir", path: here, bytes: true, large }).value ?? []) as Buffer[];
      for (const name of names) {
        const entry =
          typeof name === "string" ? `${here}/${name}` : Buffer.concat([Buffer.from(`${here}/`), name]);
        if (!(yield* removeEntry(entry, depth + 1, budget))) left = true;
      }
      if (depth > 0) break;
    }
    return left ? "left" : "emptied";
  } finally {
    if (depth === 0) budget.top = undefined;
    yield* ask({ call: "close", fd });
  }
}

/**
 * True when the entry is gone (the call succeeded, or found nothing); false (try again) on the
 * codes a swap causes; throws on anything else.
 */
function settled(error: NodeJS.ErrnoException | undefined, ...swapCodes: string[]): boolean {
  if (error === undefined || error.code === "ENOENT") return true;
  if (error.code && swapCodes.includes(error.code)) return false;
  throw error;
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
