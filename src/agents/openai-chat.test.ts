import { describe, expect, it } from "vitest";
import {
  ChatApiError,
  ChatStream,
  defaultRetryPolicy,
  parseRetryAfter,
  retryDelayMs,
} from "./openai-chat.js";

const data = (chunk: unknown) => `data: ${JSON.stringify(chunk)}`;
const delta = (d: unknown, finish: string | null = null) =>
  data({ model: "gpt-x", choices: [{ index: 0, delta: d, finish_reason: finish }] });

describe("ChatStream", () => {
  it("puts text, tool-call deltas and the usage chunk back together", () => {
    const stream = new ChatStream();
    for (const line of [
      ": keep-alive",
      delta({ role: "assistant", content: "" }),
      "",
      delta({ content: "Hel" }),
      delta({ content: "lo" }),
      delta({
        tool_calls: [
          { index: 0, id: "call_a", type: "function", function: { name: "write_file", arguments: "" } },
        ],
      }),
      delta({ tool_calls: [{ index: 0, function: { arguments: '{"path":' } }] }),
      delta({ tool_calls: [{ index: 1, id: "call_b", function: { name: "list_files", arguments: "{}" } }] }),
      delta({ tool_calls: [{ index: 0, function: { arguments: '"a"}' } }] }),
      delta({}, "tool_calls"),
      data({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } }),
      "data: [DONE]",
    ]) {
      stream.line(line);
    }
    expect(stream.result()).toEqual({
      message: {
        role: "assistant",
        content: "Hello",
        tool_calls: [
          { id: "call_a", type: "function", function: { name: "write_file", arguments: '{"path":"a"}' } },
          { id: "call_b", type: "function", function: { name: "list_files", arguments: "{}" } },
        ],
      },
      finishReason: "tool_calls",
      model: "gpt-x",
      usage: { inputTokens: 10, outputTokens: 5 },
    });
  });

  it("fails retryably on a stream cut before its end, and on an error chunk", () => {
    const cut = new ChatStream();
    cut.line(delta({ content: "half" }));
    expect(() => cut.result()).toThrow(ChatApiError);
    const failed = new ChatStream();
    expect(() => failed.line(data({ error: { message: "boom", type: "server_error" } }))).toThrow("boom");
  });
});

describe("retries", () => {
  it("reads retry-after in seconds, as a date and as retry-after-ms", () => {
    expect(parseRetryAfter(new Headers({ "retry-after": "2" }))).toBe(2000);
    expect(parseRetryAfter(new Headers({ "retry-after-ms": "150", "retry-after": "9" }))).toBe(150);
    const inFive = new Date(Date.now() + 5000).toUTCString();
    expect(parseRetryAfter(new Headers({ "retry-after": inFive }))).toBeGreaterThan(3000);
    expect(parseRetryAfter(new Headers())).toBeUndefined();
  });

  it("waits the server's retry-after, else backs off exponentially with jitter, capped", () => {
    const policy = defaultRetryPolicy;
    expect(retryDelayMs(new ChatApiError("x", 429, 1500), 0, policy)).toBe(1500);
    expect(retryDelayMs(new ChatApiError("x", 429, 10 * 60_000), 0, policy)).toBe(policy.maxDelayMs);
    const third = retryDelayMs(new ChatApiError("x", 500), 2, policy);
    expect(third).toBeGreaterThanOrEqual(3000);
    expect(third).toBeLessThanOrEqual(5000);
  });

  it("retries 429, 5xx and lost connections, not other client errors", () => {
    expect(new ChatApiError("x", 429).retryable).toBe(true);
    expect(new ChatApiError("x", 503).retryable).toBe(true);
    expect(new ChatApiError("x", undefined).retryable).toBe(true);
    expect(new ChatApiError("x", 401).retryable).toBe(false);
    expect(new ChatApiError("x", 400).retryable).toBe(false);
  });
});
