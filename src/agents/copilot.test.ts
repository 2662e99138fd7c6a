import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { copilotParser } from "./copilot.js";

/** Lines and usage files Copilot CLI 1.0.102 wrote against the scripted model server. */
const folder = new URL("../../test/fixtures/agents/copilot/", import.meta.url);
const lines = (name: string) =>
  readFileSync(new URL(`${name}.jsonl`, folder), "utf8")
    .split("\n")
    .filter(Boolean);
const usageFile = (name: string) => fileURLToPath(new URL(`${name}.usage.json`, folder));

async function parse(name: string) {
  const parser = copilotParser(usageFile(name));
  const outputs = lines(name).flatMap((line) => parser.line(line));
  const end = await parser.end({ exitCode: 0, stderrTail: "" });
  return [...outputs, ...end.outputs];
}

describe("copilotParser", () => {
  it("reads a write task, and the tokens from the usage file", async () => {
    const outputs = await parse("write");
    expect(outputs).toEqual([
      { type: "message", role: "assistant", text: "Writing." },
      {
        type: "tool_call",
        callId: "call_3e29b1bb0039f7502fe1e03a",
        tool: "create",
        input: { path: "/tmp/WORKSPACE/hello.txt", file_text: "hello\n" },
      },
      {
        type: "tool_result",
        callId: "call_3e29b1bb0039f7502fe1e03a",
        output: "Created file /tmp/WORKSPACE/hello.txt with 6 characters",
      },
      { type: "message", role: "assistant", text: "done" },
      { type: "session", sessionId: "f6f5d64b-3e59-40bf-ac39-1ce0f821d4cd" },
      { type: "usage", model: "gpt-4.1", inputTokens: 2100, outputTokens: 57 },
    ]);
  });

  it("reports a 401 as AGENT_AUTH, with its retries as system messages", async () => {
    const outputs = await parse("auth-401");
    expect(outputs.filter((o) => o.type === "message" && o.role === "system")).toHaveLength(2);
    expect(outputs.find((o) => o.type === "failure")).toMatchObject({
      error: { code: "AGENT_AUTH", message: expect.stringContaining("Authentication failed with provider") },
    });
  });

  it("reports a 429 after its retries as AGENT_RATE_LIMIT", async () => {
    const outputs = await parse("rate-limit-429");
    expect(outputs.find((o) => o.type === "failure")).toMatchObject({
      error: { code: "AGENT_RATE_LIMIT", message: expect.stringContaining("retried 5 times") },
    });
    expect(outputs).toContainEqual({
      type: "message",
      role: "system",
      text: "model API retry after rate_limit",
    });
  });

  it("reports no usage when the CLI left no usage file (it was killed)", async () => {
    const parser = copilotParser("/nonexistent/usage.json");
    expect(await parser.end({ exitCode: null, stderrTail: "" })).toEqual({ outputs: [] });
  });
});
