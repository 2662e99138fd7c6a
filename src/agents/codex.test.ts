import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { codexParser } from "./codex.js";
import type { AgentOutput, CliStreamParser } from "./types.js";

/** stdout of the real `codex exec --json` 0.169.0 against the scripted model server. */
function fixture(name: string): string[] {
  return readFileSync(new URL(`../../test/fixtures/agents/codex/${name}.jsonl`, import.meta.url), "utf8")
    .split("\n")
    .filter((l) => l.trim());
}

function feed(parser: CliStreamParser, lines: string[]): AgentOutput[] {
  return lines.flatMap((l) => parser.line(l));
}

describe("codex parser", () => {
  it("maps a turn that patches a file and runs a command to session, messages, tools and usage", async () => {
    const parser = codexParser({ model: "gpt-5.5" });
    const outputs = feed(parser, fixture("write-file"));
    expect(outputs).toEqual([
      { type: "session", sessionId: "01a20379-4f94-7943-a913-f7910e997d53" },
      { type: "message", role: "assistant", text: "I will add the file." },
      {
        type: "tool_call",
        callId: "item_1",
        tool: "apply_patch",
        input: { changes: [{ path: "/tmp/h1/repo1/hello.txt", kind: "add" }] },
      },
      { type: "tool_result", callId: "item_1", output: "add /tmp/h1/repo1/hello.txt" },
      {
        type: "tool_call",
        callId: "item_2",
        tool: "exec_command",
        input: { command: "/bin/bash -lc 'cat hello.txt'" },
      },
      { type: "tool_result", callId: "item_2", output: "hello from the script\n" },
      { type: "message", role: "assistant", text: "Added hello.txt." },
      // the scripted turns: 1000+1200+1300 in, 50+20+7 out; gpt-5.5 priced as gpt-5
      {
        type: "usage",
        model: "gpt-5.5",
        inputTokens: 3500,
        outputTokens: 77,
        costUsd: (3500 * 1.25 + 77 * 10) / 1e6,
      },
    ]);
    expect(await parser.end({ exitCode: 0, stderrTail: "" })).toEqual({ outputs: [] });
  });

  it("reports only what a resumed turn added to the session's running total", () => {
    const outputs = feed(codexParser({ before: { input: 3500, output: 77 } }), fixture("resume"));
    expect(outputs.filter((o) => o.type === "usage")).toEqual([
      { type: "usage", inputTokens: 1400, outputTokens: 3 },
    ]);
    expect(outputs).toContainEqual({ type: "message", role: "assistant", text: "Second answer." });
  });

  it("fails with AGENT_AUTH on a 401, after its reconnect notices", () => {
    const outputs = feed(codexParser(), fixture("unauthorized"));
    const failures = outputs.filter((o) => o.type === "failure");
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      error: { code: "AGENT_AUTH", message: expect.stringContaining("401 Unauthorized") },
    });
  });

  it("fails with AGENT_RATE_LIMIT when 429s outlast its retries", () => {
    const failures = feed(codexParser(), fixture("rate-limited")).filter((o) => o.type === "failure");
    expect(failures).toEqual([
      {
        type: "failure",
        error: expect.objectContaining({
          code: "AGENT_RATE_LIMIT",
          message: "exceeded retry limit, last status: 429 Too Many Requests",
        }),
      },
    ]);
  });

  it("fails with AGENT_CRASHED when the stream went quiet past its idle timeout", () => {
    const failures = feed(codexParser(), fixture("stalled-mid-stream")).filter((o) => o.type === "failure");
    expect(failures).toEqual([
      {
        type: "failure",
        error: expect.objectContaining({
          code: "AGENT_CRASHED",
          message: "stream disconnected before completion: idle timeout waiting for SSE",
        }),
      },
    ]);
  });

  it("shows an unknown model's warning as a system message, not a failure", () => {
    const outputs = feed(codexParser(), fixture("unknown-model"));
    expect(outputs).toContainEqual({
      type: "message",
      role: "system",
      text: expect.stringContaining("Model metadata for `gpt-5-codex` not found"),
    });
    expect(outputs.some((o) => o.type === "failure")).toBe(false);
  });

  it("takes the last error line, or stderr, as the failure of an exit without turn.failed", async () => {
    const parser = codexParser();
    parser.line('{"type":"error","message":"Reconnecting... 1/3 (boom)"}');
    parser.line('{"type":"error","message":"unexpected status 429 Too Many Requests: slow down"}');
    expect((await parser.end({ exitCode: 1, stderrTail: "" })).error).toMatchObject({
      code: "AGENT_RATE_LIMIT",
    });
    const quiet = codexParser();
    expect((await quiet.end({ exitCode: 2, stderrTail: "error: unexpected argument" })).error).toMatchObject({
      code: "AGENT_CRASHED",
      message: "error: unexpected argument",
    });
  });

  it("reports a command that failed, and a completed item it never saw start", () => {
    const outputs = codexParser().line(
      JSON.stringify({
        type: "item.completed",
        item: {
          id: "item_5",
          type: "command_execution",
          command: "false",
          aggregated_output: "",
          exit_code: 1,
          status: "failed",
        },
      }),
    );
    expect(outputs).toEqual([
      { type: "tool_call", callId: "item_5", tool: "exec_command", input: { command: "false" } },
      { type: "tool_result", callId: "item_5", output: "", isError: true },
    ]);
  });
});
