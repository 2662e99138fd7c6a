import { describe, expect, it } from "vitest";
import { memberAgentEnv } from "./member-keys.js";

const runner = {
  PATH: "/usr/bin",
  HOME: "/home/op",
  LANG: "C.UTF-8",
  OPENAI_API_KEY: "sk-openai",
  OPENAI_BASE_URL: "https://gateway.example/v1",
  ANTHROPIC_API_KEY: "sk-ant",
  CLAUDE_CODE_MAX_RETRIES: "2",
  GITHUB_TOKEN: "ghp_x",
  AWS_SECRET_ACCESS_KEY: "aws",
  RUNYARD_TOKEN: "ryt_runner",
  HTTP_PROXY: "http://proxy:3128",
};

describe("memberAgentEnv", () => {
  it("gives the built-in openai loop its own key and endpoint and no other agent's key or operator secret", () => {
    expect(memberAgentEnv("openai", runner)).toEqual({
      PATH: "/usr/bin",
      HOME: "/home/op",
      LANG: "C.UTF-8",
      OPENAI_API_KEY: "sk-openai",
      OPENAI_BASE_URL: "https://gateway.example/v1",
    });
  });

  it("gives Claude Code its ANTHROPIC_ and CLAUDE_ settings only", () => {
    const env = memberAgentEnv("claude_code", runner);
    expect(env.ANTHROPIC_API_KEY).toBe("sk-ant");
    expect(env.CLAUDE_CODE_MAX_RETRIES).toBe("2");
    for (const name of [
      "OPENAI_API_KEY",
      "GITHUB_TOKEN",
      "AWS_SECRET_ACCESS_KEY",
      "RUNYARD_TOKEN",
      "HTTP_PROXY",
    ])
      expect(env[name]).toBeUndefined();
  });
});
