import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync } from "node:fs";
import type { OutputFileContents } from "./types.js";

/**
 * Opened without following a link, and without waiting on a pipe: the command made the file, so
 * it may have made a link there instead, to a file it cannot open itself (another run's /tmp on
 * the host, the runner's home), which the runner, outside the sandbox, could.
 */
const ownFileFlags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * An attempt's `$RUNYARD_OUTPUT`, as every executor reads it: whether it changed since the last
 * look (cheap enough before each chunk of output: a stat, at most one a task), and its whole
 * text at the end. Only a regular file is read; a link or anything else there is refused.
 */
export class OutputFileWatch {
  private seenSize = 0;
  private seenMtimeMs = 0;
  /** Looked at in the task running now (a microtask resets it once that task is done). */
  private looked = false;

  constructor(readonly path: string) {}

  changed(): string | undefined {
    // The chunks of output one task hands on (a read of the fork-server's pipe: up to 16 chunks
    // of 64 KiB) were all read before it began, so a write to the file that came before any
    // of their bytes came before the task's first look, which sees it: one look serves them all.
    if (this.looked) return undefined;
    this.looked = true;
    queueMicrotask(() => {
      this.looked = false;
    });
    // One failing stat while the step has not written the file: the common case.
    const stat = lstatSync(this.path, { throwIfNoEntry: false });
    if (!stat?.isFile() || (stat.size === this.seenSize && stat.mtimeMs === this.seenMtimeMs))
      return undefined;
    this.seenSize = stat.size;
    this.seenMtimeMs = stat.mtimeMs;
    try {
      return readOwnFile(this.path);
    } catch {
      return undefined; // read again at the end of the attempt, where a failure is reported
    }
  }

  async read(): Promise<OutputFileContents> {
    try {
      // Most steps write nothing there; do not pay for an open then.
      const stat = lstatSync(this.path, { throwIfNoEntry: false });
      if (!stat || (stat.isFile() && stat.size === 0)) return { text: "" };
      return { text: readOwnFile(this.path) };
    } catch (error) {
      return { problem: `cannot read $RUNYARD_OUTPUT: ${(error as Error).message}` };
    }
  }
}

/** The text of the regular file at `path`; throws, saying why, for a link or anything else. */
function readOwnFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, ownFileFlags);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP")
      throw new Error("it is a symbolic link; write the values into the file itself");
    throw error;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error("it is not a regular file; write the values into a file");
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}
