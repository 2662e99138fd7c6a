/**
 * Takes the step driver's trailer (step-driver.ts) out of a pod's log as it streams: bytes
 * before the attempt's mark are the step's output, handed on as they come (all but the few at
 * the end that could be the start of the mark, held until the next chunk says); the mark and
 * what follows are the trailer, never shown.
 */
import { maxHandedBackOutputBytes } from "./step-driver.js";

/** What the driver said at its end. */
export interface DriverResult {
  /** The index of the command that failed; undefined when none did. */
  failedIndex?: number;
  /** `$RUNYARD_OUTPUT`'s size in bytes (0: not written). */
  outputBytes: number;
  /** Its bytes; undefined when it was too large to hand back. */
  output?: Buffer;
}

export class TrailerSplitter {
  private held: Buffer = Buffer.alloc(0);
  private trailer: Buffer[] | undefined;
  private trailerBytes = 0;

  constructor(
    private readonly mark: Buffer,
    private readonly onOutput: (bytes: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.trailer) {
      this.keepTrailer(chunk);
      return;
    }
    const data = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
    const at = data.indexOf(this.mark);
    if (at !== -1) {
      if (at > 0) this.onOutput(data.subarray(0, at));
      this.held = Buffer.alloc(0);
      this.trailer = [];
      this.keepTrailer(data.subarray(at + this.mark.length));
      return;
    }
    const keep = this.partialMarkAtEnd(data);
    if (data.length > keep) this.onOutput(data.subarray(0, data.length - keep));
    this.held = Buffer.from(data.subarray(data.length - keep));
  }

  /** Whether the driver's whole trailer came: the log was read to its end. */
  get complete(): boolean {
    return this.trailer !== undefined && Buffer.concat(this.trailer).includes(0x0a);
  }

  /** The log ended: held bytes that turned out not to be the mark are output after all. */
  end(): void {
    if (!this.trailer && this.held.length > 0) this.onOutput(this.held);
    this.held = Buffer.alloc(0);
  }

  /** The trailer read, or undefined when the log held none (the pod was stopped, or never ran the driver). */
  result(): DriverResult | undefined {
    if (!this.trailer) return undefined;
    const text = Buffer.concat(this.trailer);
    const newline = text.indexOf(0x0a);
    if (newline === -1) return undefined;
    const match = / failed=(-|\d+) size=(\d+) handed=(\d+)$/.exec(
      text.subarray(0, newline).toString("latin1"),
    );
    if (!match) return undefined;
    const outputBytes = Number(match[2]);
    const handed = Number(match[3]);
    const body = text.subarray(newline + 1, newline + 1 + handed);
    return {
      ...(match[1] === "-" ? {} : { failedIndex: Number(match[1]) }),
      outputBytes,
      ...(handed === outputBytes && body.length === handed ? { output: body } : {}),
    };
  }

  private keepTrailer(bytes: Buffer): void {
    // Anything a process the step left behind prints after the trailer goes past what is read.
    const room = maxHandedBackOutputBytes + 256 - this.trailerBytes;
    if (room <= 0 || bytes.length === 0) return;
    const kept = bytes.subarray(0, room);
    this.trailer!.push(Buffer.from(kept));
    this.trailerBytes += kept.length;
  }

  /** How many bytes at the end of `data` are the start of the mark. */
  private partialMarkAtEnd(data: Buffer): number {
    for (let k = Math.min(this.mark.length - 1, data.length); k > 0; k--) {
      if (data.subarray(data.length - k).equals(this.mark.subarray(0, k))) return k;
    }
    return 0;
  }
}
