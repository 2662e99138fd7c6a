import { randomUUID } from "node:crypto";
import type { BotCall, BotReply, ServerMessage } from "../../core/protocol.js";

/** The most body a call gathers from parts: a runner sending more is cut off. */
const maxGatheredBytes = 64 * 1024 * 1024;

/**
 * The bot calls of one runner socket (`bot_call` out, `bot_reply` back by the same id): each
 * waits for its answer, its time limit, or the socket closing, whichever comes first. A long
 * body (a log) comes first in `bot_reply_part`s, gathered here until the answer counts them.
 */
export class BotCalls {
  private readonly waiting = new Map<
    string,
    { done: (reply: BotReply) => void; timer: NodeJS.Timeout; parts: Buffer[]; bytes: number }
  >();

  constructor(private readonly send: (message: ServerMessage) => void) {}

  call(botId: string, call: BotCall, timeoutMs: number): Promise<BotReply> {
    const callId = randomUUID();
    return new Promise<BotReply>((resolve) => {
      const timer = setTimeout(
        () => this.fail(callId, `the bot's runner did not answer within ${timeoutMs} ms`, 504),
        timeoutMs,
      );
      this.waiting.set(callId, { done: resolve, timer, parts: [], bytes: 0 });
      this.send({ type: "bot_call", call_id: callId, bot_id: botId, call });
    });
  }

  /** A part of a call's body, in order; one of a call no longer waited for is dropped. */
  part(callId: string, bodyBase64: string): void {
    const waiting = this.waiting.get(callId);
    if (!waiting) return;
    const bytes = Buffer.from(bodyBase64, "base64");
    waiting.bytes += bytes.length;
    if (waiting.bytes > maxGatheredBytes) {
      this.fail(callId, `the bot's runner sent more than ${maxGatheredBytes} bytes for one call`);
      return;
    }
    waiting.parts.push(bytes);
  }

  /** The runner's answer; one to a call no longer waited for is dropped. */
  answer(callId: string, reply: BotReply): void {
    const waiting = this.waiting.get(callId);
    if (!waiting) return;
    const { parts: count, ...rest } = reply;
    if ((count ?? 0) !== waiting.parts.length) {
      this.fail(
        callId,
        `the bot's runner counted ${count ?? 0} parts of its answer but sent ${waiting.parts.length}`,
      );
      return;
    }
    if (waiting.parts.length === 0) {
      this.finish(callId, rest);
      return;
    }
    const body = Buffer.concat([...waiting.parts, Buffer.from(rest.body_base64, "base64")]);
    this.finish(callId, { ...rest, body_base64: body.toString("base64") });
  }

  /** The socket closed: every call waiting gets a 502. */
  closed(): void {
    for (const callId of [...this.waiting.keys()])
      this.fail(callId, "the bot's runner went away before it answered");
  }

  private finish(callId: string, reply: BotReply): void {
    const waiting = this.waiting.get(callId);
    if (!waiting) return;
    this.waiting.delete(callId);
    clearTimeout(waiting.timer);
    waiting.done(reply);
  }

  /** Ends a call with our own error answer (BOT_HOOK_FAILED). */
  private fail(callId: string, message: string, status = 502): void {
    this.finish(callId, {
      status,
      headers: {},
      body_base64: "",
      error: { code: "BOT_HOOK_FAILED", message },
    });
  }
}
