import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { claudeCodeParser } from "./claude-code.js";
import type { AgentOutput } from "./types.js";

/** Lines Claude Code 2.1.197 printed against the scripted model server (see the fixtures' folder). */
function fixture(name: string): string[] {
  const url = new URL(`../../test/fixtures/agents/claude_code/${name}.jsonl`, import.meta.url);
  return readFileSync(url, "utf8").split("\n").filter(Boolean);
}

async function parse(name: string, exitCode: number | null = 0) {
  const parser = claudeCodeParser();
  const outputs = fixture(name).flatMap((line) => parser.line(line));
  const end = await parser.end({ exitCode, stderrTail: "" });
  return { outputs: [...outputs, ...end.outputs], error: end.error };
}

function usageTotals(outputs: AgentOutput[]) {
  let inputTokens = 0;
  let outputTokens = 0;
  let costUsd = 0;
  for (const output of outputs) {
    if (output.type !== "usage") continue;
    inputTokens += output.inputTokens;
    outputTokens += output.outputTokens;
    costUsd += output.costUsd ?? 0;
  }
  return { inputTokens, outputTokens, costUsd };
}

describe("claudeCodeParser", () => {
  it("reads a write task: session, messages, the tool call and its result, in order", async () => {
    const { outputs, error } = await parse("write");
    expect(error).toBeUndefined();
    expect(outputs.filter((o) => o.type !== "usage")).toEqual([
      { type: "session", sessionId: "3f9b5c79-cd06-4ec4-8d4c-cac715ce047e" },
      { type: "message", role: "assistant", text: "Writing." },
      {
        type: "tool_call",
        callId: "toolu_54f8fccf333a02c712fa4173",
        tool: "Write",
        input: { file_path: "/tmp/WORKSPACE/hello.txt", content: "hello\n" },
      },
      {
        type: "tool_result",
        callId: "toolu_54f8fccf333a02c712fa4173",
        output: expect.stringContaining("File created successfully at: /tmp/WORKSPACE/hello.txt"),
      },
      { type: "message", role: "assistant", text: "done" },
    ]);
  });

  it("sums usage to the script's tokens and the CLI's own cost, counting each model request once", async () => {
    // The script: 1000 in / 50 out, then 1100 in / 7 out; the CLI's total_cost_usd 0.011925.
    const { outputs } = await parse("write");
    const totals = usageTotals(outputs);
    expect(totals).toEqual({ inputTokens: 2100, outputTokens: 57, costUsd: expect.closeTo(0.011925, 9) });
    // Input tokens are counted as each request starts, before the turn ends.
    const firstUsage = outputs.findIndex((o) => o.type === "usage");
    const firstToolCall = outputs.findIndex((o) => o.type === "tool_call");
    expect(firstUsage).toBeLessThan(firstToolCall);
    expect(outputs[firstUsage]).toMatchObject({
      model: "claude-opus-4-8",
      inputTokens: 1000,
      outputTokens: 0,
    });
    expect(outputs.every((o) => o.type !== "usage" || o.model === "claude-opus-4-8")).toBe(true);
  });

  it("reads a plain answer with its usage", async () => {
    const { outputs } = await parse("text");
    expect(outputs).toContainEqual({ type: "message", role: "assistant", text: "hi from the script" });
    expect(usageTotals(outputs)).toEqual({
      inputTokens: 120,
      outputTokens: 30,
      costUsd: expect.closeTo(0.00135, 9),
    });
  });

  it("reports a 401 as AGENT_AUTH, though its result's subtype says success", async () => {
    const { outputs } = await parse("auth-401", 1);
    const failures = outputs.filter((o) => o.type === "failure");
    expect(failures).toEqual([
      {
        type: "failure",
        error: {
          code: "AGENT_AUTH",
          message: "Invalid API key · Fix external API key (HTTP 401)",
          hint: expect.any(String),
        },
      },
    ]);
    // The CLI's synthetic error message is not the model's answer.
    expect(outputs.some((o) => o.type === "message" && o.role === "assistant")).toBe(false);
    expect(usageTotals(outputs)).toEqual({ inputTokens: 0, outputTokens: 0, costUsd: 0 });
  });

  it("reports a 429 after its retries as AGENT_RATE_LIMIT, and each retry as a notice", async () => {
    const { outputs } = await parse("rate-limit-429", 1);
    expect(outputs).toContainEqual({
      type: "notice",
      level: "warn",
      text: "model API retry 1/1 after HTTP 429, in 539 ms",
    });
    expect(outputs.find((o) => o.type === "failure")).toMatchObject({ error: { code: "AGENT_RATE_LIMIT" } });
  });

  it("reports the end of --max-turns as AGENT_TURN_LIMIT with the CLI's words", async () => {
    const { outputs } = await parse("max-turns", 1);
    expect(outputs.find((o) => o.type === "failure")).toMatchObject({
      error: { code: "AGENT_TURN_LIMIT", message: "Reached maximum number of turns (1)" },
    });
    expect(outputs).toContainEqual(expect.objectContaining({ type: "tool_call", tool: "Bash" }));
  });

  it("reports a request timeout (no HTTP status) as AGENT_CRASHED with the CLI's words", async () => {
    const { outputs } = await parse("timeout", 1);
    expect(outputs.find((o) => o.type === "failure")).toMatchObject({
      error: { code: "AGENT_CRASHED", message: "Request timed out" },
    });
  });

  it("says the CLI ended without a result when it died mid-stream", async () => {
    const parser = claudeCodeParser();
    for (const line of fixture("write").slice(0, 2)) parser.line(line);
    const end = await parser.end({ exitCode: null, stderrTail: "" });
    expect(end.error).toMatchObject({
      code: "AGENT_CRASHED",
      message: "Claude Code ended without a result (it was killed)",
    });
  });

  it("skips lines that are not JSON objects", () => {
    const parser = claudeCodeParser();
    expect(parser.line("Warning: something")).toEqual([]);
    expect(parser.line("42")).toEqual([]);
  });
});
