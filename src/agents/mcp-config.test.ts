import { describe, expect, it } from "vitest";
import { McpServers } from "../core/jobs/agent-tools.js";
import { tomlStrings } from "./codex-config.js";
import { geminiSettings } from "./gemini.js";
import {
  claudeCodeMcpConfig,
  codexMcpOverrides,
  codexMcpToml,
  copilotMcpConfig,
  geminiMcpServers,
  opencodeMcp,
} from "./mcp-config.js";
import { withMcp } from "./opencode.js";

const servers = McpServers.parse({
  files: { command: "node", args: ["server.js", "--root", 'a "quoted" dir'], env: { TOKEN: "t0k" } },
  docs: { url: "https://mcp.example.com/mcp" },
});

describe("MCP servers in each agent's config format", () => {
  it("Claude Code: --mcp-config's mcpServers, stdio and http", () => {
    expect(claudeCodeMcpConfig(servers)).toEqual({
      mcpServers: {
        files: {
          type: "stdio",
          command: "node",
          args: ["server.js", "--root", 'a "quoted" dir'],
          env: { TOKEN: "t0k" },
        },
        docs: { type: "http", url: "https://mcp.example.com/mcp" },
      },
    });
  });

  it("Codex: [mcp_servers.NAME] tables, as TOML its config reads and as -c overrides", () => {
    const toml = codexMcpToml(servers);
    expect(toml).toBe(
      [
        "[mcp_servers.files]",
        'command = "node"',
        'args = ["server.js", "--root", "a \\"quoted\\" dir"]',
        'env = { TOKEN = "t0k" }',
        "",
        "[mcp_servers.docs]",
        'url = "https://mcp.example.com/mcp"',
        "",
      ].join("\n"),
    );
    const read = tomlStrings(toml);
    expect(read.get("mcp_servers.files.command")).toBe("node");
    expect(read.get("mcp_servers.files.env.TOKEN")).toBe("t0k");
    expect(read.get("mcp_servers.docs.url")).toBe("https://mcp.example.com/mcp");
    expect(codexMcpOverrides(servers)).toEqual([
      "-c",
      'mcp_servers.files.command="node"',
      "-c",
      'mcp_servers.files.args=["server.js", "--root", "a \\"quoted\\" dir"]',
      "-c",
      'mcp_servers.files.env={ TOKEN = "t0k" }',
      "-c",
      'mcp_servers.docs.url="https://mcp.example.com/mcp"',
    ]);
    expect(codexMcpOverrides(McpServers.parse({ bare: { command: "srv" } }))).toContain(
      "mcp_servers.bare.env={}",
    );
  });

  it("Gemini: settings.json mcpServers (httpUrl for streamable HTTP) beside the user's own", () => {
    expect(geminiMcpServers(servers)).toEqual({
      files: {
        command: "node",
        args: ["server.js", "--root", 'a "quoted" dir'],
        env: { TOKEN: "t0k" },
        trust: true,
      },
      docs: { httpUrl: "https://mcp.example.com/mcp", trust: true },
    });
    const settings = geminiSettings(
      { mcpServers: { mine: { command: "x" }, files: { command: "old" } } },
      2,
      servers,
    );
    expect(Object.keys(settings.mcpServers as object).sort()).toEqual(["docs", "files", "mine"]);
    expect((settings.mcpServers as Record<string, { command?: string }>).files?.command).toBe("node");
    expect(geminiSettings({}, 2)).not.toHaveProperty("mcpServers");
  });

  it("OpenCode: opencode.json mcp, local with the command as one list, remote with its url", () => {
    expect(opencodeMcp(servers)).toEqual({
      files: {
        type: "local",
        command: ["node", "server.js", "--root", 'a "quoted" dir'],
        environment: { TOKEN: "t0k" },
        enabled: true,
      },
      docs: { type: "remote", url: "https://mcp.example.com/mcp", enabled: true },
    });
    const merged = JSON.parse(
      withMcp(JSON.stringify({ provider: { p: {} }, mcp: { mine: {} } }), servers) ?? "{}",
    );
    expect(Object.keys(merged.mcp).sort()).toEqual(["docs", "files", "mine"]);
    expect(merged.provider).toEqual({ p: {} });
    expect(withMcp(undefined, {})).toBeUndefined();
  });

  it("Copilot: --additional-mcp-config, local and http, every tool allowed", () => {
    expect(copilotMcpConfig(servers)).toEqual({
      mcpServers: {
        files: {
          type: "local",
          command: "node",
          args: ["server.js", "--root", 'a "quoted" dir'],
          env: { TOKEN: "t0k" },
          tools: ["*"],
        },
        docs: { type: "http", url: "https://mcp.example.com/mcp", tools: ["*"] },
      },
    });
  });

  it("refuses names no config format takes, URLs that are not http(s) or hold a password, and too many servers", () => {
    expect(McpServers.safeParse({ "a.b": { command: "x" } }).success).toBe(false);
    expect(McpServers.safeParse({ "9x": { command: "x" } }).success).toBe(false);
    expect(McpServers.safeParse({ x: { url: "file:///etc/passwd" } }).success).toBe(false);
    expect(McpServers.safeParse({ x: { url: "https://u:p@host/mcp" } }).success).toBe(false);
    expect(McpServers.safeParse({ x: { command: "a", url: "https://h/" } }).success).toBe(false);
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`s${i}`, { command: "x" }]));
    expect(McpServers.safeParse(many).success).toBe(false);
  });
});
