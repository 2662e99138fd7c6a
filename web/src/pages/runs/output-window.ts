import type { EventOf, RunEvent } from "../../../../src/core/events.js";
import { type AnswerOf, answer, api } from "../../api.js";

type OutputEvent = EventOf<"step.output">;

/**
 * The part of a run's output the terminal holds: a window of whole `step.output` events, at
 * most about `maxLines` lines, so xterm's bounded scrollback always holds all of it. A 100 MB
 * log is never fetched whole: the window opens on the newest output, pages back on demand
 * (`GET /api/runs/:id/events/page?before=`), and while it shows the newest output it follows
 * the live events.
 */
export const maxLines = 5000;
/** Bytes of output the window holds at most, whatever their lines. */
const maxBytes = 4 * 1024 * 1024;
/** Events asked per page when paging back. */
const pageEvents = 50;
/**
 * The pages read at most to fill the window at first, growing: an event holds up to 64 KiB of
 * output, so a busy log's tail is in the first few events and a quiet one takes more of them.
 */
const firstPageSizes = [5, 20, 50, 100];

export const linesOf = (text: string): number => {
  let lines = 0;
  for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) lines++;
  return lines;
};

export class OutputWindow {
  /** `step.output` events, in seq order. */
  events: OutputEvent[] = [];
  /** Whether output older than the window exists. */
  moreBefore = false;
  /** Whether the window ends at the newest output (and follows live output). */
  atLive = true;
  /** The highest seq the window has looked at (output or not). */
  lastSeq = 0;
  /** Live events that came while the tail was being read: applied after it. */
  private held: RunEvent[] | undefined;
  /**
   * Told after the window changed other than by appending: the terminal rewrites it whole.
   * `anchor`: the seq of the output the reader was at (the window's old start, after paging
   * back), to keep in view instead of jumping to the end.
   */
  onReset: (anchor?: number) => void = () => {};
  /** Told of live output appended to the window. */
  onAppend: (events: OutputEvent[]) => void = () => {};

  constructor(private readonly runId: string) {}

  private page(query: { limit: number; before?: number }): Promise<AnswerOf<"listRunEventPage">> {
    return answer(api.GET("/api/runs/{id}/events/page", { params: { path: { id: this.runId }, query } }));
  }

  /**
   * Opens the window on the newest output (below `before`, the stream's position, when given);
   * answers every event read, output or not, for the page's step states.
   */
  async loadTail(before?: number): Promise<RunEvent[]> {
    this.held = [];
    try {
      return await this.readTail(before);
    } finally {
      const held = this.held;
      this.held = undefined;
      this.push(held);
    }
  }

  private async readTail(before?: number): Promise<RunEvent[]> {
    const all: RunEvent[] = [];
    let first: number | null = null;
    let more = false;
    let lines = 0;
    let bytes = 0;
    for (const [read, size] of firstPageSizes.entries()) {
      const cursor = first ?? before;
      const page = await this.page({ limit: size, ...(cursor ? { before: cursor } : {}) });
      if (read === 0) this.lastSeq = page.last_seq;
      all.unshift(...page.events);
      first = page.first_seq;
      more = page.more_before;
      for (const event of page.events) {
        if (event.type !== "step.output") continue;
        lines += linesOf(event.data);
        bytes += event.data.length;
      }
      if (!more || lines >= maxLines || bytes >= maxBytes) break;
    }
    this.events = all.filter((event) => event.type === "step.output");
    this.moreBefore = this.trimFront() || more;
    this.atLive = true;
    this.onReset();
    return all;
  }

  /** Live events: kept (and shown) only while the window ends at the newest output. */
  push(events: RunEvent[]): void {
    if (this.held) {
      this.held.push(...events);
      return;
    }
    const fresh = events.filter((event) => event.seq > this.lastSeq);
    if (fresh.length === 0) return;
    this.lastSeq = fresh.at(-1)!.seq;
    if (!this.atLive) return;
    const output = fresh.filter((event) => event.type === "step.output");
    if (output.length === 0) return;
    this.events.push(...output);
    if (this.trimFront()) this.moreBefore = true;
    this.onAppend(output);
  }

  /** Moves the window back by a page of older output; answers false when there was none. */
  async loadOlder(): Promise<boolean> {
    const first = this.events[0]?.seq;
    if (first === undefined) return false;
    const page = await this.page({ limit: pageEvents, before: first });
    const older = page.events.filter((event) => event.type === "step.output");
    this.moreBefore = page.more_before;
    if (older.length === 0) {
      this.onReset();
      return false;
    }
    // The window keeps its size and moves back: up to half of it from the older page (newest
    // first), the rest from the start of what it showed; the newest output leaves it and live
    // output waits until the window follows it again.
    let lines = 0;
    let bytes = 0;
    let from = older.length;
    while (from > 0) {
      const data = older[from - 1]!.data;
      if (from < older.length && (lines + linesOf(data) > maxLines / 2 || bytes + data.length > maxBytes / 2))
        break;
      lines += linesOf(data);
      bytes += data.length;
      from--;
    }
    let keep = 0;
    for (const event of this.events) {
      const data = event.data;
      if (lines + linesOf(data) > maxLines || bytes + data.length > maxBytes) break;
      lines += linesOf(data);
      bytes += data.length;
      keep++;
    }
    if (from > 0) this.moreBefore = true;
    if (keep < this.events.length) this.atLive = false;
    this.events = [...older.slice(from), ...this.events.slice(0, keep)];
    this.onReset(first);
    return true;
  }

  /** Drops the oldest events past the limits (always keeping the newest); answers whether any went. */
  private trimFront(): boolean {
    let lines = 0;
    let bytes = 0;
    let from = this.events.length;
    while (from > 0) {
      const data = this.events[from - 1]!.data;
      lines += linesOf(data);
      bytes += data.length;
      if (from < this.events.length && (lines > maxLines || bytes > maxBytes)) break;
      from--;
    }
    if (from === 0) return false;
    this.events = this.events.slice(from);
    return true;
  }
}
