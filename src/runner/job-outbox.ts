import type { EventInput } from "../core/events.js";
import type { JobResult } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import { maxRunnerMessageBytes, type RunnerMessage } from "../core/protocol.js";
import { DroppedOutput } from "./dropped-output.js";
import { resultWithinLimit } from "./message-limits.js";
import type { OutputSpool } from "./output-spool.js";

/** Event batches a job may have in flight before it waits for acks. */
const maxInFlightBatches = 8;
/** With a batch in flight, what must pile up before the next goes without waiting for its ack. */
const eagerFlushBytes = 64 * 1024;
/**
 * About the most one batch carries. Kept under V8's large-object size (128 KiB): a batch's
 * message, its parsed text and its stored JSON then die young in the server's heap instead of
 * piling up as large objects until a full GC (a 200 MB run took the server +100 MB at 256 KiB,
 * +80 MB at 96 KiB).
 */
const maxBatchBytes = 96 * 1024;
/** A job's events the runner keeps in memory while they cannot be sent (the server unreachable). */
const maxPendingBytes = 32 * 1024 * 1024;

/**
 * What an event weighs against the batch cap: output by its text and what it is wrapped in (so
 * that a batch of one-character outputs holds a few thousand, not 96,000), anything else by its JSON.
 */
function eventBytes(event: EventInput): number {
  return event.type === "step.output"
    ? event.data.length + event.step.length + event.host.length + 64
    : JSON.stringify(event).length;
}

/** The runner's link to its server, as a job's outbox uses it. */
export interface OutboxLink {
  /** Whether a server has welcomed the runner on the open socket. */
  connected(): boolean;
  /**
   * Whether the server takes a job's first report as its accept, and its last batch inside its
   * `finished` (its welcome says `compact_job_reports`).
   */
  compact(): boolean;
  send(message: RunnerMessage): void;
}

/**
 * One job's events on their way to the server: numbered batches sent and sent again until acked,
 * at most `maxInFlightBatches` in flight; while the server is away, held in memory, then in the
 * job's spool on disk, then dropped and said in a notice; `finished` after the last batch.
 */
export class JobOutbox {
  /** Sent (or waiting to be sent) and not yet acked. */
  private unacked: Array<{ batch: number; events: EventInput[] }> = [];
  private readonly pending: EventInput[] = [];
  private pendingBytes = 0;
  /** Output dropped since the pending events reached their cap, not yet said in a notice. */
  private readonly dropped = new DroppedOutput();
  private last = 0;
  private ended: JobResult | undefined;
  /** `finished` went out after the last batch (see `sendFinished`). */
  private finishedSent = false;
  /** The job's last batch, made at its end to go inside `finished` rather than alone. */
  private carried: { batch: number; events: EventInput[] } | undefined;
  /** A message of the job went to the server: its accept, or the first report standing for it. */
  private said = false;
  private acceptTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly jobId: string,
    private readonly link: OutboxLink,
    private readonly logger: Logger,
    /** What it holds in memory while the server is away. */
    private readonly memoryBytes = maxPendingBytes,
    /** Events past the memory, on disk, to be sent after the pending ones (see `OutputSpool`). */
    private readonly spool?: OutputSpool,
  ) {}

  /**
   * The job is taken up: `accept` goes now, or, where the server takes the first report as the
   * accept, after `graceMs` unless a report went first (a step that prints or ends within it costs
   * one message less; a silent step's start is stored this much later, never its output).
   */
  accept(graceMs: number): void {
    if (this.link.compact() && graceMs > 0) this.acceptTimer = setTimeout(() => this.sayAccepted(), graceMs);
    else this.sayAccepted();
  }

  /** Nothing more is said for the job unasked: it was given back, or forgotten. */
  quiet(): void {
    this.said = true;
    clearTimeout(this.acceptTimer);
  }

  /** The number of the last batch made: the server has every event up to it once it acks it. */
  get lastBatch(): number {
    return this.last;
  }

  /** The job's result, once its work ended. */
  get result(): JobResult | undefined {
    return this.ended;
  }

  report(event: EventInput): void {
    // While the server is unreachable output piles up here, then in the job's spool on disk:
    // past the caps it is dropped (a bot may print for hours), counted, and said in a notice
    // once there is room again. A connected server that is only slower than the output gets all
    // of it. Once events wait on disk, every later one waits behind them, in order.
    const spool = this.spool;
    if (spool && (!spool.empty || (!this.link.connected() && this.pendingBytes >= this.memoryBytes))) {
      // Once output was dropped, the rest goes too until the spool drains: what the server gets is
      // whole up to a gap that the notice marks, not a sieve of the small chunks that still fit.
      const refused =
        this.dropped.dropping && event.type === "step.output" ? this.dropped.reason : spool.refuses(event);
      if (refused) {
        this.drop(event, refused);
        return;
      }
      const notice = this.dropped.notice();
      if (notice) spool.append(notice);
      spool.append(event);
      this.flush(false);
      return;
    }
    if (event.type === "step.output" && !this.link.connected() && this.pendingBytes >= this.memoryBytes) {
      this.drop(
        event,
        `the runner holds at most ${Math.round(this.memoryBytes / (1024 * 1024))} MiB of a job's output meanwhile`,
      );
      return;
    }
    const notice = this.dropped.notice();
    if (notice) {
      this.pending.push(notice);
      this.pendingBytes += eventBytes(notice);
    }
    this.pending.push(event);
    this.pendingBytes += eventBytes(event);
    this.flush(false);
  }

  /** The job's work ended with `result`: its last events go, then `finished`. */
  finish(result: JobResult): void {
    // Output dropped at the very end has no later event to carry its notice: it goes now.
    const notice = this.dropped.notice();
    if (notice) this.report(notice);
    this.ended = result;
    this.flush(true);
  }

  /** The server stored every batch up to `upTo`. */
  acked(upTo: number): void {
    this.unacked = this.unacked.filter((batch) => batch.batch > upTo);
    this.flush(this.ended !== undefined);
  }

  /** A server welcomed the runner (again): everything it may have missed goes to it. */
  resend(): void {
    this.carried = undefined;
    for (const batch of this.unacked) this.send({ type: "events", job_id: this.jobId, ...batch });
    if (this.pending.length > 0 || this.spool?.empty === false) this.flush(this.ended !== undefined);
    else if (this.ended) this.sendFinished();
  }

  /** The job is forgotten: what waits on disk goes. */
  remove(): void {
    this.quiet();
    this.spool?.remove();
  }

  private drop(event: EventInput, why: string): void {
    if (this.dropped.add(event, why)) {
      this.logger.warn({ jobId: this.jobId }, `dropping a job's output: ${why}`);
    }
  }

  /**
   * Sends pending events as a new batch when nothing is in flight (lowest latency) or when
   * enough has piled up (throughput); acks pull the rest.
   */
  private flush(force: boolean): void {
    // Apart from the server, events stay pending (then on disk, past the job's memory): a batch
    // made now could not go, and would hold up to a window of output in memory uncounted.
    if (!this.link.connected()) return;
    for (;;) {
      // What waits on disk comes back into memory as what is in memory goes out.
      if (this.spool && !this.spool.empty && this.pendingBytes < maxBatchBytes * maxInFlightBatches) {
        for (const event of this.spool.take(maxBatchBytes * maxInFlightBatches)) {
          this.pending.push(event);
          this.pendingBytes += eventBytes(event);
        }
      }
      if (this.pending.length === 0) break;
      const inFlight = this.unacked.length;
      // The window holds even at the end of a job: a step that printed faster than the server
      // stores must not send the server its whole backlog at once.
      if (inFlight >= maxInFlightBatches) return;
      if (!force && inFlight > 0 && this.pendingBytes < eagerFlushBytes) return;
      // A step that prints faster than the server stores would otherwise pile its output into
      // one message past the server's message size limit.
      let count = 0;
      let bytes = 0;
      while (count < this.pending.length && (count === 0 || bytes < maxBatchBytes)) {
        const event = this.pending[count];
        bytes += event ? eventBytes(event) : 0;
        count += 1;
      }
      this.last += 1;
      const batch = { batch: this.last, events: this.pending.splice(0, count) };
      this.pendingBytes -= bytes;
      this.unacked.push(batch);
      const last = this.ended && this.pending.length === 0 && this.spool?.empty !== false;
      if (last && this.link.compact()) this.carried = batch;
      else this.send({ type: "events", job_id: this.jobId, ...batch });
    }
    if (this.ended && !this.finishedSent) this.sendFinished();
  }

  /** `finished` goes after the job's last event batch, never while events still wait. */
  private sendFinished(): void {
    const result = this.ended;
    if (!result || !this.link.connected() || this.pending.length > 0 || this.spool?.empty === false) return;
    this.finishedSent = true;
    const finished = (r: JobResult, events?: EventInput[]) =>
      ({
        type: "finished",
        job_id: this.jobId,
        batches: this.last,
        ...(events ? { events } : {}),
        result: r,
      }) as const;
    const size = (r: JobResult, events?: EventInput[]) =>
      Buffer.byteLength(JSON.stringify(finished(r, events)));
    const carried = this.carried?.batch === this.last ? this.carried : undefined;
    this.carried = undefined;
    // Where the batch and the result together would pass the server's limit, the batch goes alone.
    if (carried && size(result, carried.events) <= maxRunnerMessageBytes) {
      this.send(finished(result, carried.events));
      return;
    }
    if (carried) this.send({ type: "events", job_id: this.jobId, ...carried });
    this.send(finished(resultWithinLimit(result, (r) => size(r))));
  }

  private sayAccepted(): void {
    if (!this.said) this.send({ type: "accept", job_id: this.jobId });
  }

  /** Every message of the job goes here: the first stands for its accept (see `accept`). */
  private send(message: RunnerMessage): void {
    this.said = true;
    clearTimeout(this.acceptTimer);
    this.link.send(message);
  }
}
