import type { Logger } from "../core/logger.js";
import type { BotCall, BotReply, RunnerMessage } from "../core/protocol.js";
import { linkOpen, type RunnerLink } from "../core/runner-link.js";
import { botErrorReply } from "./handlers/types.js";
import type { RunnerDaemonOptions } from "./runner-options.js";

/** The runner's bots, as its options give them (none on a runner that runs no bots). */
type Bots = RunnerDaemonOptions["bots"];

/** The server's `remove_bot`: a container it no longer wants goes, and the log says so. */
export function removeBot(bots: Bots, botId: string, logger: Logger): void {
  if (!bots) return;
  void bots.remove(botId).then(
    () => logger.info({ botId }, "removed a bot container the server no longer wants"),
    (error: unknown) => logger.warn({ err: error, botId }, "cannot remove a disowned bot container"),
  );
}

/**
 * The server's `bot_call` (a webhook forwarded to a held bot, or a bot's kept log): answered with
 * one `bot_reply` on the link it came by, a long body sent before it in parts; a failure of the
 * hook is an answer too.
 */
export function answerBotCall(
  bots: Bots,
  message: { call_id: string; bot_id: string; call: BotCall },
  socket: RunnerLink | undefined,
  send: (message: RunnerMessage) => void,
): void {
  const answer = bots?.call;
  const reply: Promise<BotReply> = answer
    ? answer(message.bot_id, message.call, (bodyBase64) => sendPart(socket, message.call_id, bodyBase64))
    : Promise.resolve(botErrorReply(503, "BOT_NOT_RUNNING", "this runner runs no bots"));
  void reply
    .catch((error: unknown) =>
      botErrorReply(502, "BOT_HOOK_FAILED", error instanceof Error ? error.message : String(error)),
    )
    .then((done) => send({ type: "bot_reply", call_id: message.call_id, reply: done }));
}

/**
 * One part of a long bot answer; resolves once the socket has sent what it held, so the parts
 * take turns with the other jobs' messages instead of filling the link ahead of them.
 */
function sendPart(socket: RunnerLink | undefined, callId: string, bodyBase64: string): Promise<void> {
  if (socket?.readyState !== linkOpen) return Promise.reject(new Error("the server link closed"));
  return new Promise<void>((resolve, reject) =>
    socket.send(
      JSON.stringify({ type: "bot_reply_part", call_id: callId, body_base64: bodyBase64 }),
      (error) => (error ? reject(error) : resolve()),
    ),
  );
}
