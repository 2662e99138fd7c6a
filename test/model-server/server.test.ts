import { afterEach, describe, expect, it } from "vitest";
import { type ModelServer, startModelServer, turns } from "./server.js";

let server: ModelServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

function parseSse(text: string): Array<{ event: string; data: Record<string, unknown> }> {
  expect(text.endsWith("\n\n")).toBe(true);
  return text
    .trim()
    .split("\n\n")
    .map((frame) => {
      const lines = frame.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "";
      const data = JSON.parse(lines.find((l) => l.startsWith("data: "))?.slice(6) ?? "null");
      expect(data.type).toBe(event);
      return { event, data };
    });
}

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${server!.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "test", "anthropic-version": "2023-06-01" },
    body: JSON.stringify(body),
  });
}

/** Rebuild the assistant message from the stream, as a client SDK does. */
function accumulate(events: Array<{ event: string; data: Record<string, unknown> }>) {
  const content: Array<Record<string, unknown>> = [];
  const json: string[] = [];
  let stopReason: unknown;
  let usage: unknown;
  for (const { data } of events) {
    const index = data.index as number;
    if (data.type === "content_block_start") {
      content[index] = { ...(data.content_block as object) };
      json[index] = "";
    } else if (data.type === "content_block_delta") {
      const delta = data.delta as { type: string; text?: string; partial_json?: string };
      if (delta.type === "text_delta") content[index]!.text = `${content[index]!.text}${delta.text}`;
      else json[index] += delta.partial_json ?? "";
    } else if (data.type === "content_block_stop") {
      if (content[index]!.type === "tool_use") content[index]!.input = JSON.parse(json[index] || "{}");
    } else if (data.type === "message_delta") {
      stopReason = (data.delta as { stop_reason: unknown }).stop_reason;
      usage = data.usage;
    }
  }
  return { content, stopReason, usage };
}

describe("scripted model server: Anthropic Messages API", () => {
  it("streams a text turn as the real SSE event sequence", async () => {
    server = await startModelServer(
      turns({ text: "Hello from the script, a little longer than one chunk." }),
    );
    const res = await post("/v1/messages", {
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      stream: true,
      messages: [{ role: "user", content: "say hi" }],
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = parseSse(await res.text());
    const names = events.map((e) => e.event);
    expect(names[0]).toBe("message_start");
    expect(names.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(names.filter((n) => n === "content_block_delta").length).toBeGreaterThan(1);
    const start = events[0]!.data.message as Record<string, unknown>;
    expect(start).toMatchObject({
      type: "message",
      role: "assistant",
      model: "claude-sonnet-4-5",
      content: [],
    });
    const msg = accumulate(events);
    expect(msg.content).toEqual([
      { type: "text", text: "Hello from the script, a little longer than one chunk." },
    ]);
    expect(msg.stopReason).toBe("end_turn");
    expect(msg.usage).toMatchObject({ output_tokens: expect.any(Number) });
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.body).toMatchObject({ messages: [{ role: "user", content: "say hi" }] });
  });

  it("round-trips a scripted tool call, then answers the tool result with the next turn", async () => {
    server = await startModelServer(
      turns(
        { text: "Reading it.", toolCalls: [{ name: "Read", input: { file_path: "/tmp/a.txt", limit: 10 } }] },
        { text: "The file says hi." },
      ),
    );
    const user = { role: "user", content: "what is in /tmp/a.txt?" };
    const first = accumulate(
      parseSse(await (await post("/v1/messages", { model: "m", stream: true, messages: [user] })).text()),
    );
    expect(first.stopReason).toBe("tool_use");
    expect(first.content[0]).toEqual({ type: "text", text: "Reading it." });
    const call = first.content[1]!;
    expect(call).toMatchObject({
      type: "tool_use",
      name: "Read",
      input: { file_path: "/tmp/a.txt", limit: 10 },
    });
    expect(call.id).toMatch(/^toolu_/);

    const second = await post("/v1/messages", {
      model: "m",
      stream: false,
      messages: [
        user,
        { role: "assistant", content: first.content },
        { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "hi" }] },
      ],
    });
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({
      type: "message",
      role: "assistant",
      content: [{ type: "text", text: "The file says hi." }],
      stop_reason: "end_turn",
      usage: { input_tokens: expect.any(Number), output_tokens: expect.any(Number) },
    });
    const toolResult = (server.requests[1]!.body as { messages: Array<{ content: unknown }> }).messages[2];
    expect(toolResult!.content).toEqual([{ type: "tool_result", tool_use_id: call.id, content: "hi" }]);
  });

  it("fails the first attempts as scripted (401, then 429 with retry-after, then 500), then answers", async () => {
    server = await startModelServer(
      turns({
        text: "ok",
        failFirst: [
          { kind: "status", status: 401 },
          { kind: "status", status: 429, retryAfterSecs: 7 },
          { kind: "status", status: 500 },
        ],
      }),
    );
    const body = { model: "m", messages: [{ role: "user", content: "x" }] };
    const r1 = await post("/v1/messages", body);
    expect(r1.status).toBe(401);
    expect(await r1.json()).toMatchObject({ type: "error", error: { type: "authentication_error" } });
    const r2 = await post("/v1/messages", body);
    expect(r2.status).toBe(429);
    expect(r2.headers.get("retry-after")).toBe("7");
    expect(await r2.json()).toMatchObject({ error: { type: "rate_limit_error" } });
    const r3 = await post("/v1/messages", body);
    expect(r3.status).toBe(500);
    expect(await r3.json()).toMatchObject({ error: { type: "api_error" } });
    const r4 = await post("/v1/messages", body);
    expect(r4.status).toBe(200);
    expect(await r4.json()).toMatchObject({ content: [{ type: "text", text: "ok" }] });
  });

  it("stalls before headers and mid-stream; stop() still returns", async () => {
    server = await startModelServer({
      conversations: [
        { match: (r) => JSON.stringify(r.body).includes("before"), turns: [{ fail: { kind: "stall" } }] },
        { turns: [{ text: "never finished", fail: { kind: "stall-mid-stream", afterEvents: 2 } }] },
      ],
    });
    const noHeaders = await Promise.race([
      post("/v1/messages", { stream: true, messages: [{ role: "user", content: "before" }] }).then(
        () => "answered",
        () => "failed",
      ),
      new Promise((r) => setTimeout(() => r("stalled"), 300)),
    ]);
    expect(noHeaders).toBe("stalled");

    const res = await post("/v1/messages", { stream: true, messages: [{ role: "user", content: "mid" }] });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let got = "";
    const more = async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return "ended";
        got += Buffer.from(value).toString("utf8");
      }
    };
    const outcome = await Promise.race([more(), new Promise((r) => setTimeout(() => r("stalled"), 300))]);
    expect(outcome).toBe("stalled");
    expect(got).toContain("event: message_start");
    expect(got).not.toContain("message_stop");
    await server.stop();
    server = undefined;
  });

  it("ends a stream with an in-stream error event", async () => {
    server = await startModelServer(turns({ text: "x", fail: { kind: "stream-error", afterEvents: 1 } }));
    const res = await post("/v1/messages", { stream: true, messages: [{ role: "user", content: "x" }] });
    expect(res.status).toBe(200);
    const events = parseSse(await res.text());
    expect(events.map((e) => e.event)).toEqual(["message_start", "error"]);
    expect(events[1]!.data).toEqual({
      type: "error",
      error: { type: "overloaded_error", message: "Overloaded" },
    });
  });

  it("answers count_tokens and records unknown routes as 404", async () => {
    server = await startModelServer(turns());
    const r = await post("/v1/messages/count_tokens", {
      model: "m",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(await r.json()).toEqual({ input_tokens: expect.any(Number) });
    const nf = await fetch(`${server.url}/v1/complete`);
    expect(nf.status).toBe(404);
    expect(server.requests.map((q) => q.outcome)).toEqual(["count_tokens", "not found"]);
  });
});
