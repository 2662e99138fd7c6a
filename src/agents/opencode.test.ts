import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { failedAttempt, opencodeParser, providerConfig } from "./opencode.js";
import type { AgentOutput, CliStreamParser } from "./types.js";

/** stdout of the real `opencode run --format json` 1.18.33 against the scripted model server. */
function fixture(name: string): string[] {
  return readFileSync(new URL(`../../test/fixtures/agents/opencode/${name}.jsonl`, import.meta.url), "utf8")
    .split("\n")
    .filter((l) => l.trim());
}

function feed(parser: CliStreamParser, lines: string[]): AgentOutput[] {
  return lines.flatMap((l) => parser.line(l));
}

describe("opencode parser", () => {
  it("maps a turn that writes a file and runs a command to session, messages, tools and usage per step", async () => {
    const parser = opencodeParser("runyard/gpt-4o-mini");
    const outputs = feed(parser, fixture("write-file"));
    const price = (i: number, o: number) => (i * 0.15 + o * 0.6) / 1e6;
    expect(outputs).toEqual([
      { type: "session", sessionId: "ses_dfc7980e0ffedaRMU4x0j9xOHo" },
      { type: "message", role: "assistant", text: "I will add the file." },
      {
        type: "tool_call",
        callId: "call_w",
        tool: "write",
        input: { filePath: "/tmp/h1/oc/repo/hello.txt", content: "hello from the script\n" },
      },
      { type: "tool_result", callId: "call_w", output: "Wrote file successfully." },
      {
        type: "usage",
        model: "runyard/gpt-4o-mini",
        inputTokens: 1000,
        outputTokens: 50,
        costUsd: price(1000, 50),
      },
      {
        type: "tool_call",
        callId: "call_b",
        tool: "bash",
        input: { command: "cat hello.txt", description: "Show the file" },
      },
      { type: "tool_result", callId: "call_b", output: "hello from the script\n" },
      {
        type: "usage",
        model: "runyard/gpt-4o-mini",
        inputTokens: 1200,
        outputTokens: 20,
        costUsd: price(1200, 20),
      },
      { type: "message", role: "assistant", text: "Added hello.txt." },
      {
        type: "usage",
        model: "runyard/gpt-4o-mini",
        inputTokens: 1300,
        outputTokens: 7,
        costUsd: price(1300, 7),
      },
    ]);
    expect(await parser.end({ exitCode: 0, stderrTail: "" })).toEqual({ outputs: [] });
  });

  it("keeps the session id of a resumed turn and counts only its own step", () => {
    const outputs = feed(opencodeParser(), fixture("resume"));
    expect(outputs).toEqual([
      { type: "session", sessionId: "ses_dfc7980e0ffedaRMU4x0j9xOHo" },
      { type: "message", role: "assistant", text: "Second answer." },
      { type: "usage", inputTokens: 1400, outputTokens: 3 },
    ]);
  });

  it("fails with AGENT_AUTH on a 401 and AGENT_RATE_LIMIT when 429s outlast its retries", () => {
    expect(feed(opencodeParser(), fixture("unauthorized")).filter((o) => o.type === "failure")).toEqual([
      {
        type: "failure",
        error: expect.objectContaining({ code: "AGENT_AUTH", message: "model server: scripted 401" }),
      },
    ]);
    expect(feed(opencodeParser(), fixture("rate-limited")).filter((o) => o.type === "failure")).toEqual([
      {
        type: "failure",
        error: expect.objectContaining({ code: "AGENT_RATE_LIMIT", message: "model server: scripted 429" }),
      },
    ]);
  });

  it("reports a failed tool call as an error result, and a crash without events from stderr", async () => {
    const parser = opencodeParser();
    const failedTool = {
      type: "tool_use",
      sessionID: "ses_1",
      part: {
        tool: "read",
        callID: "c1",
        state: { status: "error", input: { filePath: "/x" }, error: "File not found" },
      },
    };
    expect(parser.line(JSON.stringify(failedTool)).slice(1)).toEqual([
      { type: "tool_call", callId: "c1", tool: "read", input: { filePath: "/x" } },
      { type: "tool_result", callId: "c1", output: "File not found", isError: true },
    ]);
    expect((await parser.end({ exitCode: 1, stderrTail: "Error: boom" })).error).toMatchObject({
      code: "AGENT_CRASHED",
      message: "Error: boom",
    });
  });
});

describe("opencode provider config", () => {
  it("points a provider of its own at OPENAI_BASE_URL, keeping the key out of the config", () => {
    const { config, model } = providerConfig(
      {
        OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
        OPENAI_API_KEY: "sk-secret",
        OPENCODE_CONFIG_CONTENT: JSON.stringify({ provider: { other: { npm: "x" } }, theme: "dark" }),
      },
      "gpt-4.1",
    );
    expect(model).toBe("runyard/gpt-4.1");
    expect(config).not.toContain("sk-secret");
    expect(JSON.parse(config!)).toEqual({
      theme: "dark",
      autoupdate: false,
      share: "disabled",
      provider: {
        other: { npm: "x" },
        runyard: {
          npm: "@ai-sdk/openai-compatible",
          name: "runyard",
          options: { baseURL: "http://127.0.0.1:9/v1", apiKey: "{env:OPENAI_API_KEY}" },
          models: { "gpt-4.1": { name: "gpt-4.1" } },
        },
      },
    });
  });

  it("leaves OpenCode's own providers alone without OPENAI_BASE_URL", () => {
    expect(providerConfig({ ANTHROPIC_API_KEY: "k" }, "anthropic/claude-sonnet-4-5")).toEqual({
      model: "anthropic/claude-sonnet-4-5",
    });
  });
});

describe("opencode's log of a failed model call", () => {
  /** A stderr line of `opencode run --print-logs --log-level ERROR` 1.18.33, as it prints it. */
  const logLine = (small: boolean, error: string) =>
    `timestamp=2026-11-23T07:35:14.867Z level=ERROR run=fae5d11e message="stream error" providerID=runyard modelID=gpt-4o-mini session.id=ses_1 small=${small} agent=build mode=primary error.error="${error}"`;

  it("counts the session's own calls by what their message says, not its title request", () => {
    expect(failedAttempt(logLine(false, "AI_APICallError: model server: scripted 429"))).toEqual({
      code: "AGENT_RATE_LIMIT",
      message: "model server: scripted 429",
    });
    expect(failedAttempt(logLine(false, "AI_APICallError: Service Unavailable"))?.code).toBe(
      "AGENT_UNAVAILABLE",
    );
    expect(failedAttempt(logLine(false, "AI_APICallError: Incorrect API key provided"))?.code).toBe(
      "AGENT_AUTH",
    );
    expect(
      failedAttempt(logLine(true, "AI_RetryError: Failed after 3 attempts. Last error: 429")),
    ).toBeUndefined();
    expect(failedAttempt(logLine(false, "AI_APICallError: context length exceeded"))).toBeUndefined();
  });
});
