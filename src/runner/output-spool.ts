import { appendFileSync, closeSync, mkdirSync, openSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { EventInput } from "../core/events.js";

/** How much of the spool is read back at a time. */
const readChunkBytes = 256 * 1024;

/**
 * A job's events that wait on disk while the server cannot take them (unreachable, or its
 * database away) and the runner's memory for them is full: one JSON line each, in order, in
 * `<dir>/<job>.jsonl`, read back from the front as the server acks what went before. Output past
 * `maxBytes` is not kept (`full`; the runner says how much it dropped); other events always are,
 * so that a step's end is never lost.
 */
export class OutputSpool {
  private readonly path: string;
  private written = 0;
  private readOffset = 0;
  /** Bytes read from the file but not yet a whole line. */
  private partial = Buffer.alloc(0);
  /** Events in the spool, not yet taken back. */
  private count = 0;

  constructor(
    dir: string,
    jobId: string,
    readonly maxBytes: number,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `${encodeURIComponent(jobId)}.jsonl`);
    rmSync(this.path, { force: true });
  }

  get empty(): boolean {
    return this.count === 0;
  }

  /** Bytes on disk not taken back yet. */
  get bytes(): number {
    return this.written - this.readOffset;
  }

  /**
   * Whether output of `event`'s size would take the spool's file past its cap (it is then
   * dropped). The file, not what is left to read: what was read back stays on disk until the
   * spool empties, which a step printing as fast as the server reads may never let it do.
   */
  full(event: EventInput): boolean {
    return event.type === "step.output" && this.written + event.data.length > this.maxBytes;
  }

  append(event: EventInput): void {
    const line = `${JSON.stringify(event)}\n`;
    appendFileSync(this.path, line, { mode: 0o600 });
    this.written += Buffer.byteLength(line);
    this.count += 1;
  }

  /** The oldest events, about `bytes` of them (at least one), in order. */
  take(bytes: number): EventInput[] {
    const taken: EventInput[] = [];
    let size = 0;
    const fd = openSync(this.path, "r");
    try {
      while (this.count > 0 && (taken.length === 0 || size < bytes)) {
        const newline = this.partial.indexOf(0x0a);
        if (newline < 0) {
          const buffer = Buffer.alloc(readChunkBytes);
          const read = readSync(fd, buffer, 0, readChunkBytes, this.readOffset + this.partial.length);
          if (read === 0) break;
          this.partial = Buffer.concat([this.partial, buffer.subarray(0, read)]);
          continue;
        }
        const line = this.partial.subarray(0, newline).toString("utf8");
        this.partial = this.partial.subarray(newline + 1);
        this.readOffset += newline + 1;
        this.count -= 1;
        size += line.length;
        taken.push(JSON.parse(line) as EventInput);
      }
    } finally {
      closeSync(fd);
    }
    if (this.count === 0) this.reset();
    return taken;
  }

  /** The job is over: its spool goes. */
  remove(): void {
    this.reset();
  }

  private reset(): void {
    rmSync(this.path, { force: true });
    this.written = 0;
    this.readOffset = 0;
    this.partial = Buffer.alloc(0);
    this.count = 0;
  }
}
