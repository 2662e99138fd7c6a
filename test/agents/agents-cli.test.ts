/** `runyard agents` and `runyard agents install`, run as a user runs them. */
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, tempDir } from "../helpers/cli.js";

/** A home whose agents folder holds a `claude` that answers --version like 2.1.197. */
function homeWithClaude(): { home: string; claude: string } {
  const home = tempDir();
  const bin = join(home, "agents", "claude_code", "node_modules", ".bin");
  mkdirSync(bin, { recursive: true });
  const claude = join(bin, "claude");
  writeFileSync(claude, "#!/bin/sh\necho '2.1.197 (Claude Code)'\n");
  chmodSync(claude, 0o755);
  return { home, claude };
}

/** No agent credentials from the machine running the tests, and no CLIs from its PATH. */
const cleanEnv = {
  PATH: tempDir(),
  ANTHROPIC_API_KEY: "",
  CLAUDE_CODE_OAUTH_TOKEN: "",
  ANTHROPIC_AUTH_TOKEN: "",
  OPENAI_API_KEY: "",
  OPENAI_BASE_URL: "",
};

describe("runyard agents", () => {
  it("lists every agent with --json: installed, version, credentials and usable, never a credential", async () => {
    const { home, claude } = homeWithClaude();
    const result = await runCli(["agents", "--json", "--home", home], {
      env: { ...cleanEnv, ANTHROPIC_API_KEY: "sk-ant-very-secret" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("sk-ant-very-secret");
    const statuses = JSON.parse(result.stdout) as Array<{ name: string }>;
    expect(statuses.map((s) => s.name)).toEqual([
      "claude_code",
      "codex",
      "opencode",
      "gemini",
      "copilot",
      "openai",
    ]);
    expect(statuses[0]).toEqual({
      name: "claude_code",
      installed: true,
      path: claude,
      version: "2.1.197",
      pinned_version: "2.1.197",
      credentials: true,
      usable: true,
    });
    expect(statuses.at(-1)).toMatchObject({ name: "openai", installed: true, usable: false });
  });

  it("prints a table, and below it what keeps each agent from being usable", async () => {
    const { home } = homeWithClaude();
    const result = await runCli(["agents", "--home", home], { env: cleanEnv });
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toMatch(/^NAME\s+INSTALLED\s+VERSION\s+PATH\s+CREDENTIALS\s+USABLE$/);
    expect(lines[1]).toMatch(/^claude_code\s+yes\s+2\.1\.197\s+\S+\/claude\s+no\s+no$/);
    expect(lines.find((line) => line.startsWith("openai "))).toMatch(/\(built in\)\s+no\s+no$/);
    expect(result.stdout).toContain(
      "claude_code: no credentials: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_AUTH_TOKEN",
    );
  });
});

describe("runyard agents install", () => {
  it("exits 2 with the agents it can install for a name it does not know", async () => {
    const result = await runCli(["agents", "install", "aider", "--home", tempDir()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error: unknown agent "aider"');
    expect(result.stderr).toMatch(/hint: Agents to install: claude_code/);
  });

  it("exits 2 for the built-in loop, which has nothing to install", async () => {
    const result = await runCli(["agents", "install", "openai", "--home", tempDir()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("openai is built into runyard");
  });

  it("takes seed 004's --claude-code flag, reports progress on stderr, and exits 1 when npm cannot reach its registry", async () => {
    const home = tempDir();
    const result = await runCli(["agents", "install", "--claude-code", "--home", home], {
      env: {
        NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
        NPM_CONFIG_FETCH_RETRIES: "0",
        NPM_CONFIG_CACHE: tempDir(),
      },
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(
      `claude_code: installing @anthropic-ai/claude-code@2.1.197 into ${join(home, "agents", "claude_code")}`,
    );
    expect(result.stderr).toMatch(/hint: The npm registry is unreachable/);
  }, 60_000);
});
