import { runEventTypes } from "../../../../src/core/event-types.js";
import type { RunEvent } from "../../../../src/core/events.js";
import { answer, api } from "../../api.js";
import { parseStreamEvent } from "../../stream-event.js";

/** How long to wait before reconnecting after the stream broke (the network, a server restart). */
const retryMs = 1000;

/**
 * A run's live events over SSE. EventSource cannot send the Bearer header, so each connection
 * asks for a fresh stream token and resumes after the last seq it saw: a broken connection
 * loses and repeats nothing. Events arrive in batches (one per task) so a fast run's output
 * costs one React update per batch, not per event.
 */
export class RunStream {
  private source: EventSource | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pending: RunEvent[] = [];
  private flushing = false;
  private stopped = false;
  /** Connections that opened so far: more than one means it reconnected. */
  connects = 0;

  constructor(
    private readonly runId: string,
    public lastSeq: number,
    private readonly onEvents: (events: RunEvent[]) => void,
    private readonly onFinished: () => void,
  ) {}

  start(): void {
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let url: string;
    try {
      const token = await answer(
        api.POST("/api/runs/{id}/stream-token", { params: { path: { id: this.runId } } }),
      );
      url = `${token.url}&after=${this.lastSeq}`;
    } catch {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => this.connects++;
    source.onmessage = (message) => this.received(message);
    // Every event type arrives under its own name (`event: step.output`).
    for (const type of runEventTypes) source.addEventListener(type, (message) => this.received(message));
    source.onerror = () => {
      source.close();
      if (this.source === source) this.retry();
    };
  }

  private retry(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), retryMs);
  }

  private received(message: MessageEvent): void {
    const event = parseStreamEvent(message.data);
    // A resumed stream starts after lastSeq; anything at or below it was seen already.
    if (!event || event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    this.pending.push(event);
    if (event.type === "run.finished") {
      // The stream ends here: no reconnect.
      this.source?.close();
      this.source = undefined;
      this.flush();
      this.onFinished();
      return;
    }
    if (!this.flushing) {
      this.flushing = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.onEvents(batch);
  }
}
