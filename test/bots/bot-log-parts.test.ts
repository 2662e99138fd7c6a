import { describe, expect, it } from "vitest";
import { botReplyPartBytes, RunnerMessage, type ServerMessage } from "../../src/core/protocol.js";
import { type BotHandlerDeps, BotJobHandler } from "../../src/runner/handlers/bot.js";
import { BotLogFile, maxBotLogDownloadBytes } from "../../src/runner/handlers/bot-log-file.js";
import { BotCalls } from "../../src/server/bots/bot-calls.js";
import { tempDir } from "../helpers/cli.js";

/** The runner link's largest message (src/server/app.ts), which no part may near. */
const linkMessageBytes = 64 * 1024 * 1024;

describe("a bot's log over the runner link", () => {
  it("goes in parts far below the link's largest message, each checked as the server checks runner messages, and comes out whole: the newest part of a log larger than the link takes", async () => {
    const dir = tempDir("runyard-bot-calls-");
    // A log past the link's largest message: 70 MiB kept (a bot's log_max_mb up to 1 GiB).
    const file = new BotLogFile(dir, "bot_big", 140 * 1024 * 1024);
    const text = "x".repeat(1000);
    for (let i = 0; i < 72_000; i++) file.write("2026-03-01T10:00:00.000Z", "stdout", `${i} ${text}`);
    file.write("2026-03-01T10:00:01.000Z", "stdout", "the last line");
    file.close();
    const expected = new BotLogFile(dir, "bot_big").read();
    expect(expected.length).toBeLessThanOrEqual(maxBotLogDownloadBytes + 200);

    // The runner's handler needs only its log folder for a log call.
    const handler = new BotJobHandler({ workDir: dir, logDir: dir } as unknown as BotHandlerDeps);
    const sent: ServerMessage[] = [];
    const calls = new BotCalls((message) => sent.push(message));
    const answered = calls.call("bot_big", { kind: "log" }, 30_000);
    const ask = sent[0];
    if (ask?.type !== "bot_call") throw new Error("no bot_call was sent");
    let parts = 0;
    let largest = 0;
    const reply = await handler.call(ask.bot_id, ask.call, async (bodyBase64) => {
      const wire = JSON.stringify({ type: "bot_reply_part", call_id: ask.call_id, body_base64: bodyBase64 });
      largest = Math.max(largest, wire.length);
      const message = RunnerMessage.parse(JSON.parse(wire));
      if (message.type !== "bot_reply_part") throw new Error("not a part");
      calls.part(message.call_id, message.body_base64);
      parts += 1;
    });
    expect(reply.parts).toBe(parts);
    expect(parts).toBe(Math.ceil(expected.length / botReplyPartBytes));
    expect(largest).toBeLessThan(linkMessageBytes / 64);
    calls.answer(ask.call_id, reply);
    const got = await answered;
    expect(got.error).toBeUndefined();
    const body = Buffer.from(got.body_base64, "base64");
    // The same bytes but for the time on the note line, which each read writes anew.
    const afterNote = (bytes: Buffer) => bytes.subarray(bytes.indexOf(10) + 1);
    expect(body.length).toBe(expected.length);
    expect(afterNote(body).equals(afterNote(expected))).toBe(true);
    const lines = body.toString().split("\n");
    expect(lines[0]).toMatch(/runyard older output left out: a download holds the newest 8 MiB$/);
    expect(lines.at(-2)).toBe("2026-03-01T10:00:01.000Z stdout the last line");
  }, 120_000);

  it("fails a call whose answer counts other parts than came, and drops parts of calls no longer waited for", async () => {
    const sent: ServerMessage[] = [];
    const calls = new BotCalls((message) => sent.push(message));
    const answered = calls.call("bot_a", { kind: "log" }, 30_000);
    const ask = sent[0];
    if (ask?.type !== "bot_call") throw new Error("no bot_call was sent");
    calls.part(ask.call_id, Buffer.from("one ").toString("base64"));
    calls.part("call-of-nobody", Buffer.from("stray").toString("base64"));
    calls.answer(ask.call_id, { status: 200, headers: {}, body_base64: "", parts: 2 });
    expect(await answered).toMatchObject({
      status: 502,
      error: {
        code: "BOT_HOOK_FAILED",
        message: "the bot's runner counted 2 parts of its answer but sent 1",
      },
    });
  });

  it("refuses a part larger than the protocol's part size", () => {
    const tooBig = Buffer.alloc(botReplyPartBytes * 2).toString("base64");
    expect(
      RunnerMessage.safeParse({ type: "bot_reply_part", call_id: "c", body_base64: tooBig }).success,
    ).toBe(false);
  });
});
