import { describe, expect, it } from "vitest";
import { agentError, LineSplitter } from "./cli-agent.js";

function split(chunks: string[], maxChars?: number): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line), maxChars);
  for (const chunk of chunks) splitter.push(chunk);
  splitter.end();
  return lines;
}

describe("LineSplitter", () => {
  it("keeps a line whole when it comes in several chunks", () => {
    expect(split(['{"a":', '1}\n{"b"', ":2}\n"])).toEqual(['{"a":1}', '{"b":2}']);
  });

  it("hands on several lines of one chunk, and a last line without a newline at the end", () => {
    expect(split(["one\ntwo\nthree"])).toEqual(["one", "two", "three"]);
  });

  it("ends a line at \\r\\n like at \\n", () => {
    expect(split(["one\r\ntwo\r\n"])).toEqual(["one", "two"]);
  });

  it("drops a line longer than its cap, however it is chunked, and reads on after it", () => {
    expect(split(["short\n", "x".repeat(6), "x".repeat(6), "\nnext\n"], 10)).toEqual(["short", "next"]);
    expect(split(["x".repeat(11), "\nnext"], 10)).toEqual(["next"]);
    expect(split(["xxxx", "xxxx\n"], 10)).toEqual(["xxxxxxxx"]);
  });
});

describe("agentError", () => {
  it("gives every agent code a hint, from the error table or its own", () => {
    expect(agentError("AGENT_AUTH", "bad key").hint).toMatch(/API key/);
    expect(agentError("AGENT_CRASHED", "exit code 1").hint).not.toBe("");
    expect(agentError("AGENT_NOT_INSTALLED", "missing", "install it").hint).toBe("install it");
  });
});
