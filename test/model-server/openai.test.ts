import { afterEach, describe, expect, it } from "vitest";
import { type ModelServer, startModelServer, turns } from "./server.js";

let server: ModelServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${server!.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer test" },
    body: JSON.stringify(body),
  });
}

/** A parsed JSON answer: the tests read it as the clients' SDKs do, field by field. */
// biome-ignore lint/suspicious/noExplicitAny: wire JSON, checked by the assertions
type Json = any;

async function json(res: Response | Promise<Response>): Promise<Json> {
  return (await res).json();
}

/** The `data:` payloads of an SSE body, with their `event:` names when sent. */
function frames(text: string): Array<{ event?: string; data: string }> {
  expect(text.endsWith("\n\n")).toBe(true);
  return text
    .trim()
    .split("\n\n")
    .map((frame) => {
      const lines = frame.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7);
      const data = lines.find((l) => l.startsWith("data: "))?.slice(6) ?? "";
      return event ? { event, data } : { data };
    });
}

describe("scripted model server: OpenAI Chat Completions", () => {
  it("streams text and tool-call deltas that rebuild the scripted turn, then usage and [DONE]", async () => {
    server = await startModelServer(
      turns({
        text: "Writing the file for you now.",
        toolCalls: [
          { name: "write_file", input: { path: "a.txt", content: "hello world, long enough" }, id: "call_1" },
        ],
        usage: { input_tokens: 120, output_tokens: 30 },
      }),
    );
    const res = await post("/v1/chat/completions", {
      model: "gpt-test",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "write a.txt" }],
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const list = frames(await res.text());
    expect(list.at(-1)).toEqual({ data: "[DONE]" });
    let text = "";
    const calls: Array<{ id?: string; name?: string; arguments: string }> = [];
    let finish: unknown;
    let usage: unknown;
    for (const { data } of list.slice(0, -1)) {
      const chunk = JSON.parse(data);
      expect(chunk.object).toBe("chat.completion.chunk");
      expect(chunk.model).toBe("gpt-test");
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta.content ?? "";
      for (const d of choice.delta.tool_calls ?? []) {
        calls[d.index] ??= { arguments: "" };
        if (d.id) calls[d.index]!.id = d.id;
        if (d.function.name) calls[d.index]!.name = d.function.name;
        calls[d.index]!.arguments += d.function.arguments ?? "";
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(text).toBe("Writing the file for you now.");
    expect(calls.map((c) => ({ ...c, arguments: JSON.parse(c.arguments) }))).toEqual([
      { id: "call_1", name: "write_file", arguments: { path: "a.txt", content: "hello world, long enough" } },
    ]);
    expect(finish).toBe("tool_calls");
    expect(usage).toEqual({ prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 });
  });

  it("answers the tool result with the next turn, non-streaming, counting assistant messages", async () => {
    server = await startModelServer(
      turns({ toolCalls: [{ name: "list_files", input: {} }] }, { text: "done" }),
    );
    const first = await json(
      post("/chat/completions", { model: "m", messages: [{ role: "user", content: "go" }] }),
    );
    expect(first.choices[0].finish_reason).toBe("tool_calls");
    const call = first.choices[0].message.tool_calls[0];
    expect(call.function).toEqual({ name: "list_files", arguments: "{}" });
    const second = await json(
      post("/v1/chat/completions", {
        model: "m",
        messages: [
          { role: "user", content: "go" },
          first.choices[0].message,
          { role: "tool", tool_call_id: call.id, content: "a.txt" },
        ],
      }),
    );
    expect(second.choices[0]).toMatchObject({
      message: { role: "assistant", content: "done" },
      finish_reason: "stop",
    });
    expect(server.requests.map((r) => r.outcome)).toEqual([
      "conversation 0 turn 0 attempt 0",
      "conversation 0 turn 1 attempt 0",
    ]);
  });

  it("fails in OpenAI's error format with retry-after, lists the model, and ends a stream with an error chunk", async () => {
    server = await startModelServer({
      model: "gpt-scripted",
      conversations: [
        {
          turns: [
            {
              text: "ok",
              failFirst: [
                { kind: "status", status: 401 },
                { kind: "status", status: 429, retryAfterSecs: 2 },
                { kind: "stream-error", afterEvents: 1 },
              ],
            },
          ],
        },
      ],
    });
    const body = { model: "m", stream: true, messages: [{ role: "user", content: "hi" }] };
    const unauthorized = await post("/v1/chat/completions", body);
    expect(unauthorized.status).toBe(401);
    expect((await json(unauthorized)).error).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_api_key",
    });
    const limited = await post("/v1/chat/completions", body);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("2");
    expect((await json(limited)).error.code).toBe("rate_limit_exceeded");
    const broken = frames(await (await post("/v1/chat/completions", body)).text());
    expect(broken).toHaveLength(2);
    expect(JSON.parse(broken[1]!.data).error.type).toBe("server_error");
    const models = await json(fetch(`${server.url}/v1/models`));
    expect(models).toMatchObject({ object: "list", data: [{ id: "gpt-scripted", object: "model" }] });
  });
});

describe("scripted model server: OpenAI Responses", () => {
  it("streams the real event sequence with a message and a function call, and usage at completion", async () => {
    server = await startModelServer(
      turns({
        text: "Running it.",
        toolCalls: [{ name: "shell", input: { command: ["ls", "-la"] }, id: "call_9" }],
        usage: { input_tokens: 7, output_tokens: 3 },
      }),
    );
    const res = await post("/v1/responses", { model: "gpt-r", stream: true, store: false, input: "list" });
    const list = frames(await res.text()).map((f) => ({ event: f.event, data: JSON.parse(f.data) }));
    for (const f of list) expect(f.data.type).toBe(f.event);
    expect(list.map((f) => f.event)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(list.map((f) => f.data.sequence_number)).toEqual(list.map((_, i) => i));
    const completed = list.at(-1)!.data.response;
    expect(completed.status).toBe("completed");
    expect(completed.usage).toMatchObject({ input_tokens: 7, output_tokens: 3, total_tokens: 10 });
    expect(completed.output[1]).toMatchObject({
      type: "function_call",
      call_id: "call_9",
      name: "shell",
      arguments: JSON.stringify({ command: ["ls", "-la"] }),
    });
  });

  it("counts a turn per run of assistant items in the input history", async () => {
    server = await startModelServer(turns({ text: "0" }, { text: "1" }, { text: "2" }));
    const user = (text: string) => ({
      type: "message",
      role: "user",
      content: [{ type: "input_text", text }],
    });
    const history = [
      { type: "message", role: "developer", content: [{ type: "input_text", text: "rules" }] },
      user("first"),
      { type: "reasoning", summary: [] },
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "x" }] },
      { type: "function_call", call_id: "c1", name: "shell", arguments: "{}" },
      { type: "function_call", call_id: "c2", name: "shell", arguments: "{}" },
      { type: "function_call_output", call_id: "c1", output: "ok" },
      { type: "function_call_output", call_id: "c2", output: "ok" },
    ];
    const answer = async (input: unknown) =>
      (await json(post("/v1/responses", { model: "m", input }))).output[0].content[0].text;
    expect(await answer("just a string")).toBe("0");
    expect(await answer(history)).toBe("1");
    expect(
      await answer([...history, { type: "message", role: "assistant", content: [] }, user("again")]),
    ).toBe("2");
  });

  it("ends a stream with response.failed and fails in OpenAI's error format", async () => {
    server = await startModelServer(
      turns({
        text: "ok",
        failFirst: [
          { kind: "status", status: 500 },
          { kind: "stream-error", afterEvents: 2 },
        ],
      }),
    );
    const body = { model: "m", stream: true, input: "hi" };
    const failed = await post("/responses", body);
    expect(failed.status).toBe(500);
    expect((await json(failed)).error.type).toBe("server_error");
    const list = frames(await (await post("/v1/responses", body)).text());
    expect(list.map((f) => f.event)).toEqual(["response.created", "response.in_progress", "response.failed"]);
    expect(JSON.parse(list[2]!.data).response.error).toMatchObject({ code: "server_error" });
  });
});
