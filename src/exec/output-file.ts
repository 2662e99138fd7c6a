import { readFileSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { OutputFileContents } from "./types.js";

/**
 * An attempt's `$RUNYARD_OUTPUT`, as every executor reads it: whether it changed since the last
 * look (cheap enough before each chunk of output), and its whole text at the end.
 */
export class OutputFileWatch {
  private seenSize = 0;
  private seenMtimeMs = 0;

  constructor(readonly path: string) {}

  changed(): string | undefined {
    // One failing stat while the step has not written the file: the common case.
    const stat = statSync(this.path, { throwIfNoEntry: false });
    if (!stat?.isFile() || (stat.size === this.seenSize && stat.mtimeMs === this.seenMtimeMs))
      return undefined;
    this.seenSize = stat.size;
    this.seenMtimeMs = stat.mtimeMs;
    try {
      return readFileSync(this.path, "utf8");
    } catch {
      return undefined; // read again at the end of the attempt, where a failure is reported
    }
  }

  async read(): Promise<OutputFileContents> {
    try {
      // Most steps write nothing there; do not pay for a read through the thread pool then.
      const stat = statSync(this.path, { throwIfNoEntry: false });
      if (!stat || stat.size === 0) return { text: "" };
      return { text: await readFile(this.path, "utf8") };
    } catch (error) {
      return { problem: `cannot read $RUNYARD_OUTPUT: ${(error as Error).message}` };
    }
  }
}
