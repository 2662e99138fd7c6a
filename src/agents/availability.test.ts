import { describe, expect, it } from "vitest";
import { agentStatus, versionIn } from "./availability.js";

describe("versionIn", () => {
  it("takes the version out of what CLIs print for --version", () => {
    expect(versionIn("2.1.197 (Claude Code)\n")).toBe("2.1.197");
    expect(versionIn("GitHub Copilot CLI 1.0.102.\nRun 'copilot update' to check for updates.\n")).toBe(
      "1.0.102",
    );
    expect(versionIn("codex-cli 0.169.0")).toBe("0.169.0");
    expect(versionIn("0.61.0-nightly.20251120\n")).toBe("0.61.0-nightly.20251120");
    expect(versionIn("dev build\nmore")).toBe("dev build");
    expect(versionIn("")).toBeNull();
  });
});

describe("agentStatus of the built-in openai loop", () => {
  const lookup = (env: Record<string, string>) => ({ agentsHome: "/nonexistent", env });

  it("is installed always, and usable with an API key, which it never shows", async () => {
    const status = await agentStatus("openai", lookup({ OPENAI_API_KEY: "sk-secret" }));
    expect(status).toEqual({ name: "openai", installed: true, credentials: true, usable: true });
    expect(JSON.stringify(status)).not.toContain("sk-secret");
  });

  it("is usable without a key against a model server on this machine", async () => {
    expect(
      (await agentStatus("openai", lookup({ OPENAI_BASE_URL: "http://127.0.0.1:8000/v1" }))).usable,
    ).toBe(true);
    expect(
      (await agentStatus("openai", lookup({ OPENAI_BASE_URL: "http://localhost:11434/v1" }))).usable,
    ).toBe(true);
  });

  it("is not usable without a key for a remote API, and says what to set", async () => {
    const status = await agentStatus("openai", lookup({ OPENAI_BASE_URL: "https://api.example.com/v1" }));
    expect(status).toMatchObject({
      usable: false,
      credentials: false,
      problem: expect.stringContaining("OPENAI_API_KEY"),
    });
  });
});

describe("agentStatus of a name runyard does not know", () => {
  it("is neither installed nor usable, and says so", async () => {
    expect(await agentStatus("aider", { agentsHome: "/nonexistent", env: {} })).toEqual({
      name: "aider",
      installed: false,
      credentials: false,
      usable: false,
      problem: "runyard knows no agent aider",
    });
  });
});
