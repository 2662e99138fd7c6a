import { EventEmitter } from "node:events";
import type { Writable } from "node:stream";

/**
 * What the runner protocol needs of the link between a runner and its server, on either side:
 * `ws`'s WebSocket has it, and so does an end of `runnerLinkPair`. Messages are JSON texts, in
 * order; a close carries a WebSocket close code on both sides.
 */
export interface RunnerLink {
  readonly readyState: number;
  send(data: string, sent?: (error?: Error) => void): void;
  close(code?: number, reason?: string): void;
  /** Closed at once (code 1006 on the other side), what was not yet delivered dropped. */
  terminate(): void;
  on(event: "message", listener: (data: string | Buffer) => void): unknown;
  on(event: "close", listener: (code: number, reason: Buffer) => void): unknown;
}

/**
 * The byte stream under a link (a WebSocket's TCP socket), corked while a turn of the event loop
 * sends several messages so that they go out in one write (RunnerSession's `send`).
 */
export type LinkWire = Pick<Writable, "cork" | "uncork">;

/** `readyState` of an open link (WebSocket's OPEN). */
export const linkOpen = 1;
const closing = 2;
const closed = 3;

/** WebSocket's "message too big": the receiving side refused a message past its size. */
const tooBigCode = 1009;
/** WebSocket's code for a link that ended without a close (what `terminate` gives the other side). */
const abnormalCode = 1006;
/** WebSocket's "no status received": a close without a code. */
const noStatusCode = 1005;

/**
 * One end of an in-process link. A message is delivered on a later turn of the event loop, as a
 * socket's would be, and in order; a close is seen by both ends after every message sent before it.
 */
class LinkEnd extends EventEmitter implements RunnerLink {
  readyState = linkOpen;
  peer: LinkEnd | undefined;
  /** What was sent to this end and not yet delivered. */
  private readonly inbox: Array<{ data: string; sent?: (error?: Error) => void }> = [];
  private scheduled = false;
  private closeWith: { code: number; reason: string } | undefined;

  /** `maxBytes`: the largest message this end takes (its UTF-8 bytes); a larger one closes the link. */
  constructor(private readonly maxBytes: number) {
    super();
  }

  send(data: string, sent?: (error?: Error) => void): void {
    const peer = this.peer;
    if (this.readyState !== linkOpen || !peer) {
      sent?.(new Error("the link is closed"));
      return;
    }
    if (data.length > peer.maxBytes / 3 && Buffer.byteLength(data) > peer.maxBytes) {
      // As a WebSocket server with maxPayload does: the message is not read, and the link closes.
      this.close(tooBigCode, "Max payload size exceeded");
      sent?.(new Error("the message is larger than the other side takes"));
      return;
    }
    peer.inbox.push({ data, ...(sent ? { sent } : {}) });
    peer.schedule();
  }

  close(code = noStatusCode, reason = ""): void {
    if (this.readyState !== linkOpen) return;
    for (const end of this.ends()) {
      end.readyState = closing;
      end.closeWith = { code, reason };
      end.schedule();
    }
  }

  terminate(): void {
    if (this.readyState === closed) return;
    for (const end of this.ends()) {
      // An end that has seen its close hears no second one, as a socket's never does.
      if (end.readyState === closed) continue;
      for (const { sent } of end.inbox.splice(0)) sent?.(new Error("the link was cut"));
      end.readyState = closing;
      end.closeWith = { code: abnormalCode, reason: "" };
      end.schedule();
    }
  }

  private ends(): LinkEnd[] {
    return this.peer ? [this, this.peer] : [this];
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  /** Everything waiting, in order; then the close, if one was asked. */
  private deliver(): void {
    this.scheduled = false;
    for (const { data, sent } of this.inbox.splice(0)) {
      this.emit("message", data);
      sent?.();
    }
    const ending = this.closeWith;
    if (ending && this.readyState === closing) {
      this.readyState = closed;
      this.emit("close", ending.code, Buffer.from(ending.reason));
    }
  }
}

/**
 * Two ends of a link inside one process (`runyard up`'s own runner and its server): the messages
 * a socket would carry, without the socket, its frames and its loopback round trips. `serverTakes`
 * is the largest message the server's end takes, as its WebSocket's maxPayload.
 */
export function runnerLinkPair(serverTakes: number): { runner: RunnerLink; server: RunnerLink } {
  const runner = new LinkEnd(Number.POSITIVE_INFINITY);
  const server = new LinkEnd(serverTakes);
  runner.peer = server;
  server.peer = runner;
  return { runner, server };
}
