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
  ANTHROPIC_BASE_URL: "",
  ANTHROPIC_MODEL: "",
  CODEX_HOME: "",
  CLAUDE_CONFIG_DIR: "",
  XDG_CONFIG_HOME: "",
  GOOGLE_GEMINI_BASE_URL: "",
  COPILOT_PROVIDER_BASE_URL: "",
  COPILOT_MODEL: "",
  COPILOT_HOME: "",
  // No CLI's own config from the machine's home either.
  HOME: tempDir(),
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
      endpoint: { value: "https://api.anthropic.com", source: "default" },
      model: { value: "(Claude Code's default)", source: "default" },
    });
    expect(statuses.at(-1)).toMatchObject({ name: "openai", installed: true, usable: false });
  });

  it("prints a table, and below it what keeps each agent from being usable", async () => {
    const { home } = homeWithClaude();
    const result = await runCli(["agents", "--home", home], { env: cleanEnv });
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toMatch(/^NAME\s+INSTALLED\s+VERSION\s+PATH\s+CREDENTIALS\s+USABLE\s+ENDPOINT\s+MODEL$/);
    expect(lines[1]).toMatch(
      /^claude_code\s+yes\s+2\.1\.197\s+\S+\/claude\s+no\s+no\s+https:\/\/api\.anthropic\.com \(default\)\s+\(Claude Code's default\) \(default\)$/,
    );
    expect(lines.find((line) => line.startsWith("openai "))).toMatch(/\(built in\)\s+no\s+no\s+-\s+-$/);
    expect(result.stdout).toContain(
      "claude_code: no credentials: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_AUTH_TOKEN",
    );
  });
});

describe("runyard agents: which endpoint and model", () => {
  it("shows the endpoint and model of the user's ~/.codex/config.toml, and the runner env's OPENAI_BASE_URL over it", async () => {
    const home = tempDir();
    mkdirSync(join(home, ".codex"));
    writeFileSync(
      join(home, ".codex", "config.toml"),
      [
        'model = "gpt-5.5"',
        'model_provider = "corp"',
        "",
        "[model_providers.corp]",
        'name = "Corp gateway"',
        'base_url = "http://gateway.corp.example/v1" # the company gateway',
        'env_key = "CORP_KEY"',
        "",
      ].join("\n"),
    );
    const ask = async (env: Record<string, string>) => {
      const result = await runCli(["agents", "--json", "--home", tempDir()], {
        env: { ...cleanEnv, HOME: home, ...env },
      });
      expect(result.code).toBe(0);
      return (JSON.parse(result.stdout) as Array<{ name: string; endpoint?: unknown; model?: unknown }>).find(
        (s) => s.name === "codex",
      );
    };
    expect(await ask({})).toMatchObject({
      endpoint: { value: "http://gateway.corp.example/v1", source: "~/.codex/config.toml" },
      model: { value: "gpt-5.5", source: "~/.codex/config.toml" },
    });
    expect(await ask({ OPENAI_BASE_URL: "http://127.0.0.1:4000/v1" })).toMatchObject({
      endpoint: { value: "http://127.0.0.1:4000/v1", source: "runner env" },
      model: { value: "gpt-5.5", source: "~/.codex/config.toml" },
    });
  });

  it("shows Claude Code's endpoint from the env of ~/.claude/settings.json", async () => {
    const home = tempDir();
    mkdirSync(join(home, ".claude"));
    writeFileSync(
      join(home, ".claude", "settings.json"),
      JSON.stringify({ model: "claude-sonnet-4-5", env: { ANTHROPIC_BASE_URL: "http://llm.corp.example" } }),
    );
    const result = await runCli(["agents", "--home", tempDir()], { env: { ...cleanEnv, HOME: home } });
    expect(result.stdout.split("\n").find((line) => line.startsWith("claude_code"))).toMatch(
      /http:\/\/llm\.corp\.example \(~\/\.claude\/settings\.json\)\s+claude-sonnet-4-5 \(~\/\.claude\/settings\.json\)$/,
    );
  });
});

describe("runyard agents, OpenCode and Gemini CLI as their users configured them", () => {
  it("shows OpenCode's provider endpoint and model from ~/.config/opencode/opencode.json, and Gemini's model from ~/.gemini/settings.json", async () => {
    const home = tempDir();
    mkdirSync(join(home, ".config", "opencode"), { recursive: true });
    writeFileSync(
      join(home, ".config", "opencode", "opencode.json"),
      JSON.stringify({
        model: "corp/corp-coder",
        provider: {
          corp: { npm: "@ai-sdk/openai-compatible", options: { baseURL: "http://gw.corp.example/v1" } },
        },
      }),
    );
    mkdirSync(join(home, ".gemini"));
    writeFileSync(join(home, ".gemini", "settings.json"), JSON.stringify({ model: { name: "gemini-corp" } }));
    const result = await runCli(["agents", "--json", "--home", tempDir()], {
      env: { ...cleanEnv, HOME: home, GOOGLE_GEMINI_BASE_URL: "http://127.0.0.1:4100" },
    });
    expect(result.code).toBe(0);
    const shown = JSON.parse(result.stdout) as Array<{ name: string; endpoint?: unknown; model?: unknown }>;
    expect(shown.find((s) => s.name === "opencode")).toMatchObject({
      endpoint: { value: "http://gw.corp.example/v1", source: "~/.config/opencode/opencode.json" },
      model: { value: "corp/corp-coder", source: "~/.config/opencode/opencode.json" },
    });
    expect(shown.find((s) => s.name === "gemini")).toMatchObject({
      endpoint: { value: "http://127.0.0.1:4100", source: "runner env" },
      model: { value: "gemini-corp", source: "~/.gemini/settings.json" },
    });
  });
});

describe("runyard agents, Copilot CLI as its users configured it", () => {
  it("shows Copilot's model from ~/.copilot/settings.json, and its own provider and COPILOT_MODEL from the runner env", async () => {
    const home = tempDir();
    mkdirSync(join(home, ".copilot"));
    // What `copilot config model gpt-4.1` writes.
    writeFileSync(
      join(home, ".copilot", "settings.json"),
      `${JSON.stringify({ model: "gpt-4.1" }, null, 2)}\n`,
    );
    const ask = async (env: Record<string, string>) => {
      const result = await runCli(["agents", "--json", "--home", tempDir()], {
        env: { ...cleanEnv, HOME: home, ...env },
      });
      expect(result.code).toBe(0);
      return (JSON.parse(result.stdout) as Array<{ name: string; endpoint?: unknown; model?: unknown }>).find(
        (s) => s.name === "copilot",
      );
    };
    expect(await ask({})).toMatchObject({
      endpoint: { value: "(GitHub Copilot's models)", source: "default" },
      model: { value: "gpt-4.1", source: "~/.copilot/settings.json" },
    });
    expect(
      await ask({ COPILOT_PROVIDER_BASE_URL: "http://127.0.0.1:11434/v1", COPILOT_MODEL: "qwen2.5-coder" }),
    ).toMatchObject({
      endpoint: { value: "http://127.0.0.1:11434/v1", source: "runner env" },
      model: { value: "qwen2.5-coder", source: "runner env" },
    });
    // With a provider of its own, Copilot CLI takes no model from its settings file: it needs one named.
    expect(await ask({ COPILOT_PROVIDER_BASE_URL: "http://127.0.0.1:11434/v1" })).toMatchObject({
      model: { value: "(none: its own provider needs COPILOT_MODEL or the run's model)", source: "missing" },
    });
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

  it("takes the OpenRunner-style --claude-code flag, reports progress on stderr, and exits 1 when npm cannot reach its registry", async () => {
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
