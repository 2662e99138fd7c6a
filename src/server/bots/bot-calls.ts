import { randomUUID } from "node:crypto";
import type { BotCall, BotReply, ServerMessage } from "../../core/protocol.js";

/**
 * The bot calls of one runner socket (`bot_call` out, `bot_reply` back by the same id): each
 * waits for its answer, its time limit, or the socket closing, whichever comes first.
 */
export class BotCalls {
  private readonly waiting = new Map<string, { done: (reply: BotReply) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly send: (message: ServerMessage) => void) {}

  call(botId: string, call: BotCall, timeoutMs: number): Promise<BotReply> {
    const callId = randomUUID();
    return new Promise<BotReply>((resolve) => {
      const timer = setTimeout(
        () =>
          this.finish(
            callId,
            failed(504, "BOT_HOOK_FAILED", `the bot's runner did not answer within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      this.waiting.set(callId, { done: resolve, timer });
      this.send({ type: "bot_call", call_id: callId, bot_id: botId, call });
    });
  }

  /** The runner's answer; one to a call no longer waited for is dropped. */
  answer(callId: string, reply: BotReply): void {
    this.finish(callId, reply);
  }

  /** The socket closed: every call waiting gets a 502. */
  closed(): void {
    for (const callId of [...this.waiting.keys()])
      this.finish(callId, failed(502, "BOT_HOOK_FAILED", "the bot's runner went away before it answered"));
  }

  private finish(callId: string, reply: BotReply): void {
    const waiting = this.waiting.get(callId);
    if (!waiting) return;
    this.waiting.delete(callId);
    clearTimeout(waiting.timer);
    waiting.done(reply);
  }
}

function failed(status: number, code: string, message: string): BotReply {
  return { status, headers: {}, body_base64: "", error: { code, message } };
}
