import {
  appendFileSync,
  closeSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { EventInput } from "../core/events.js";

/** How much of the spool is read back at a time. */
const readChunkBytes = 256 * 1024;

/** Bytes written to the spools between two looks at the disk's free space. */
const statfsEveryBytes = 4 * 1024 * 1024;
/** Once the disk was found short, how long before it is looked at again (a step may print fast). */
const statfsShortRetryMs = 1000;

/** A job's output the runner keeps on disk past its memory, when it has a spool folder. */
const maxSpoolBytes = 1024 * 1024 * 1024;
/** All its jobs' output the runner keeps on disk. */
const defaultSpoolTotalBytes = 10 * 1024 * 1024 * 1024;
/** The free space the spool always leaves on its disk. */
const defaultSpoolMinFreeBytes = 1024 * 1024 * 1024;

/**
 * What all the jobs' spools of one runner may hold together: at most `maxBytes` of files, and
 * never so much that the disk under them keeps less than `minFreeBytes` free (a runner shares its
 * disk with the steps' own files and its host). Each spool asks before it takes more output.
 */
export class SpoolDisk {
  private held = 0;
  private writtenSinceLook = Number.POSITIVE_INFINITY;
  private lookedAt = 0;
  private free = 0;

  constructor(
    readonly dir: string,
    readonly maxBytes = defaultSpoolTotalBytes,
    readonly minFreeBytes = defaultSpoolMinFreeBytes,
  ) {}

  /** Why `bytes` more of output may not be written, or undefined when they may. */
  refuses(bytes: number): string | undefined {
    if (this.held + bytes > this.maxBytes)
      return `the runner keeps at most ${size(this.maxBytes)} of all its jobs' output on disk meanwhile (RUNYARD_SPOOL_MAX_BYTES)`;
    if (
      this.writtenSinceLook >= statfsEveryBytes ||
      (this.short() && Date.now() - this.lookedAt >= statfsShortRetryMs)
    )
      this.look();
    return this.short(bytes) ? this.shortOfSpace : undefined;
  }

  get shortOfSpace(): string {
    if (this.minFreeBytes === 0) return `the disk of the runner's spool (${this.dir}) is full`;
    return `the disk of the runner's spool (${this.dir}) has less than ${size(this.minFreeBytes)} free (RUNYARD_SPOOL_MIN_FREE_BYTES)`;
  }

  /** The disk is out of space whatever `statfs` said (another process filled it). */
  exhausted(): void {
    this.free = 0;
    this.writtenSinceLook = 0;
    this.lookedAt = Date.now();
  }

  wrote(bytes: number): void {
    this.held += bytes;
    this.writtenSinceLook += bytes;
  }

  released(bytes: number): void {
    this.held -= bytes;
  }

  private short(bytes = 0): boolean {
    return this.free - this.writtenSinceLook - bytes < this.minFreeBytes;
  }

  private look(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const stats = statfsSync(this.dir);
    this.free = stats.bavail * stats.bsize;
    this.writtenSinceLook = 0;
    this.lookedAt = Date.now();
  }
}

/** A cap as people set it: MiB, or bytes under one. */
const size = (bytes: number): string =>
  bytes < 1024 * 1024 ? `${bytes} bytes` : `${Math.round(bytes / (1024 * 1024))} MiB`;

/**
 * A job's events waiting on disk while the server cannot take them and the runner's memory for
 * them is full: one JSON line each in `<dir>/<job>.jsonl`, read from the front as the server acks.
 * Output past `maxBytes` or the runner's `SpoolDisk` is dropped (`full`, and said); other events
 * never are, so a step's end is never lost: if the disk refuses one, it and all later wait in memory.
 */
export class OutputSpool {
  private readonly path: string;
  private written = 0;
  private readOffset = 0;
  /** Bytes read from the file but not yet a whole line. */
  private partial = Buffer.alloc(0);
  /** Events in the spool's file, not yet taken back. */
  private count = 0;
  /** Events the disk refused (ENOSPC), in order after the file's. */
  private readonly tail: EventInput[] = [];

  /** Whether the file was made: nothing is on disk, nor made, for a job whose server stays. */
  private onDisk = false;

  constructor(
    private readonly dir: string,
    jobId: string,
    readonly maxBytes = maxSpoolBytes,
    private readonly disk?: SpoolDisk,
  ) {
    this.path = join(dir, `${encodeURIComponent(jobId)}.jsonl`);
  }

  get empty(): boolean {
    return this.count === 0 && this.tail.length === 0;
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
    return this.refuses(event) !== undefined;
  }

  /** Why output of `event`'s size is not kept (see `full`), or undefined when it is. */
  refuses(event: EventInput): string | undefined {
    if (event.type !== "step.output") return undefined;
    if (this.written + event.data.length > this.maxBytes)
      return `the runner keeps at most ${size(this.maxBytes)} of a job's output on disk meanwhile`;
    if (this.tail.length > 0) return this.disk?.shortOfSpace ?? "the disk of the runner's spool is full";
    return this.disk?.refuses(event.data.length);
  }

  append(event: EventInput): void {
    if (this.tail.length > 0) {
      this.tail.push(event);
      return;
    }
    const line = `${JSON.stringify(event)}\n`;
    try {
      if (!this.onDisk) {
        // Made at the first event that waits (the runner empties the spool's folder at its start).
        mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        this.onDisk = true;
        writeFileSync(this.path, line, { mode: 0o600 });
      } else appendFileSync(this.path, line, { mode: 0o600 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOSPC" && code !== "EDQUOT") throw error;
      // A partial line may be on disk: the file ends at the last whole one.
      this.disk?.exhausted();
      this.tail.push(event);
      return;
    }
    const bytes = Buffer.byteLength(line);
    this.written += bytes;
    this.disk?.wrote(bytes);
    this.count += 1;
  }

  /** The oldest events, about `bytes` of them (at least one), in order. */
  take(bytes: number): EventInput[] {
    const taken: EventInput[] = [];
    let size = 0;
    // None in the file (the disk refused the first, maybe its very making): the tail is all.
    const fd = this.count > 0 ? openSync(this.path, "r") : undefined;
    try {
      while (this.count > 0 && (taken.length === 0 || size < bytes)) {
        const newline = this.partial.indexOf(0x0a);
        if (newline < 0) {
          const buffer = Buffer.alloc(readChunkBytes);
          const read = readSync(fd!, buffer, 0, readChunkBytes, this.readOffset + this.partial.length);
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
      if (fd !== undefined) closeSync(fd);
    }
    if (this.count === 0) {
      this.reset();
      taken.push(...this.tail.splice(0));
    }
    return taken;
  }

  /** The job is over: its spool goes. */
  remove(): void {
    this.reset();
    this.tail.length = 0;
  }

  private reset(): void {
    if (this.onDisk) rmSync(this.path, { force: true });
    this.onDisk = false;
    this.disk?.released(this.written);
    this.written = 0;
    this.readOffset = 0;
    this.partial = Buffer.alloc(0);
    this.count = 0;
  }
}
