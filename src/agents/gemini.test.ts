import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { geminiParser, geminiSettings } from "./gemini.js";
import type { AgentOutput } from "./types.js";

/** Lines Gemini CLI 0.61.0 printed against a loopback Gemini API (see the fixtures' folder). */
function fixture(name: string): string[] {
  const url = new URL(`../../test/fixtures/agents/gemini/${name}.jsonl`, import.meta.url);
  return readFileSync(url, "utf8").split("\n").filter(Boolean);
}

async function parse(name: string, exitCode: number | null = 0) {
  const parser = geminiParser();
  const outputs = fixture(name).flatMap((line) => parser.line(line));
  const end = await parser.end({ exitCode, stderrTail: "" });
  return { outputs: [...outputs, ...end.outputs], error: end.error };
}

describe("geminiParser", () => {
  it("reads a write task: session, message, tool call and result, and usage per model", async () => {
    const { outputs, error } = await parse("write");
    expect(error).toBeUndefined();
    expect(outputs).toEqual([
      { type: "session", sessionId: "20e76473-fce2-4444-abe3-050cf846df1b" },
      { type: "message", role: "assistant", text: "Writing." },
      {
        type: "tool_call",
        callId: "write_file__write_file_1795355135327_0",
        tool: "write_file",
        input: { file_path: "/tmp/WORKSPACE/hello.txt", content: "hello\n" },
      },
      { type: "tool_result", callId: "write_file__write_file_1795355135327_0", output: "" },
      { type: "message", role: "assistant", text: "done" },
      { type: "usage", model: "gemini-2.5-pro", inputTokens: 2100, outputTokens: 57 },
    ]);
  });

  it("joins the pieces of an answer into one message", () => {
    const parser = geminiParser();
    const piece = (content: string) =>
      JSON.stringify({ type: "message", role: "assistant", content, delta: true });
    expect(parser.line(piece("hel"))).toEqual([]);
    expect(parser.line(piece("lo"))).toEqual([]);
    expect(
      parser.line(JSON.stringify({ type: "tool_use", tool_name: "ls", tool_id: "t1", parameters: {} })),
    ).toEqual([
      { type: "message", role: "assistant", text: "hello" },
      { type: "tool_call", callId: "t1", tool: "ls", input: {} },
    ]);
  });

  it("reports a 401 as AGENT_AUTH with the API's message", async () => {
    const { outputs } = await parse("auth-401", 145);
    const failure = outputs.find((o): o is Extract<AgentOutput, { type: "failure" }> => o.type === "failure");
    expect(failure?.error.code).toBe("AGENT_AUTH");
    expect(failure?.error.message).toContain("API key not valid");
    expect(outputs.some((o) => o.type === "usage")).toBe(false);
  });

  it("reports a 429 after its ten retries as AGENT_RATE_LIMIT", async () => {
    const { outputs } = await parse("rate-limit-429", 173);
    expect(outputs.find((o) => o.type === "failure")).toMatchObject({
      error: { code: "AGENT_RATE_LIMIT", message: expect.stringContaining("Resource has been exhausted") },
    });
  });

  it("reads the session a resumed turn continues", async () => {
    const { outputs } = await parse("resume");
    expect(outputs[0]).toEqual({ type: "session", sessionId: "7ee66a71-e865-48b2-8d6a-9ba8cdfd9190" });
  });

  it("turns the retries it prints on stderr into system messages", () => {
    const parser = geminiParser();
    const chunk =
      'Attempt 1 failed with status 429. Retrying with backoff... _ApiError: {"error":{"code":429}}\n  status: 429\n}\n';
    expect(parser.stderr?.(chunk)).toEqual([
      { type: "message", role: "system", text: "model API retry after attempt 1 (HTTP 429)" },
    ]);
  });

  it("knows a failure by its exit code when there was no result (the HTTP status mod 256)", async () => {
    const endWith = (exitCode: number) => geminiParser().end({ exitCode, stderrTail: "boom" });
    expect((await endWith(173)).error?.code).toBe("AGENT_RATE_LIMIT");
    expect((await endWith(145)).error?.code).toBe("AGENT_AUTH");
    expect((await endWith(41)).error?.code).toBe("AGENT_AUTH");
    expect((await endWith(53)).error?.code).toBe("AGENT_TURN_LIMIT");
    expect(await endWith(1)).toMatchObject({
      error: { code: "AGENT_CRASHED", message: "Gemini CLI ended without a result (exit code 1): boom" },
    });
  });

  it("maps result errors to codes", () => {
    const result = (error: { type: string; message: string }) =>
      geminiParser().line(JSON.stringify({ type: "result", status: "error", error, stats: { models: {} } }));
    expect(result({ type: "FatalTurnLimitedError", message: "Reached max session turns" })).toMatchObject([
      { type: "failure", error: { code: "AGENT_TURN_LIMIT" } },
    ]);
    expect(
      result({
        type: "unknown",
        message: '[API Error: {"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}]',
      }),
    ).toMatchObject([{ type: "failure", error: { code: "AGENT_RATE_LIMIT" } }]);
  });
});

describe("geminiSettings", () => {
  it("keeps the user's settings and lays runyard's retries and privacy on top", () => {
    const users = {
      model: { name: "gemini-corp" },
      security: { auth: { selectedType: "vertex-ai" } },
      general: { vimMode: true, maxAttempts: 10 },
      privacy: { usageStatisticsEnabled: true },
    };
    expect(geminiSettings(users, 3)).toEqual({
      model: { name: "gemini-corp" },
      security: { auth: { selectedType: "vertex-ai" } },
      general: { vimMode: true, maxAttempts: 4 },
      privacy: { usageStatisticsEnabled: false },
    });
  });

  it("logs in with an API key when the user named no way, and never asks for more than 10 attempts", () => {
    expect(geminiSettings({}, 20)).toEqual({
      security: { auth: { selectedType: "gemini-api-key" } },
      privacy: { usageStatisticsEnabled: false },
      general: { maxAttempts: 10 },
    });
  });
});
