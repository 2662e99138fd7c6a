import { isStdioServer, type McpServers } from "../core/jobs/agent-tools.js";

/** A task's MCP servers (core/jobs/agent-tools.ts) in each CLI's config format, for its adapter to write. */

type Json = Record<string, unknown>;

/** Claude Code's `--mcp-config` file (`type: "http"` is streamable HTTP). */
export function claudeCodeMcpConfig(servers: McpServers): Json {
  const out: Json = {};
  for (const [name, server] of Object.entries(servers)) {
    out[name] = isStdioServer(server)
      ? { type: "stdio", command: server.command, args: server.args, env: server.env }
      : { type: "http", url: server.url };
  }
  return { mcpServers: out };
}

/**
 * Codex's `[mcp_servers.NAME]` config.toml tables (`url`: streamable HTTP) as `-c key=value` overrides, so
 * the user's config.toml stays as it is; each value is TOML (JSON strings, which TOML reads alike).
 */
export function codexMcpOverrides(servers: McpServers): string[] {
  const args: string[] = [];
  for (const [key, value] of codexMcpEntries(servers)) args.push("-c", `${key}=${value}`);
  return args;
}

/** The same tables as a `config.toml` document (what the overrides amount to). */
export function codexMcpToml(servers: McpServers): string {
  const lines: string[] = [];
  let table = "";
  for (const [key, value] of codexMcpEntries(servers)) {
    const at = key.lastIndexOf(".");
    const header = key.slice(0, at);
    if (header !== table) {
      if (lines.length > 0) lines.push("");
      lines.push(`[${header}]`);
      table = header;
    }
    lines.push(`${key.slice(at + 1)} = ${value}`);
  }
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

function codexMcpEntries(servers: McpServers): Array<[string, string]> {
  const entries: Array<[string, string]> = [];
  for (const [name, server] of Object.entries(servers)) {
    const table = `mcp_servers.${name}`;
    if (isStdioServer(server)) {
      entries.push([`${table}.command`, tomlString(server.command)]);
      entries.push([`${table}.args`, `[${server.args.map(tomlString).join(", ")}]`]);
      const env = Object.entries(server.env).map(([key, value]) => `${key} = ${tomlString(value)}`);
      entries.push([`${table}.env`, `{ ${env.join(", ")} }`.replace("{  }", "{}")]);
    } else {
      entries.push([`${table}.url`, tomlString(server.url)]);
    }
  }
  return entries;
}

/** A TOML basic string: JSON's escapes are TOML's, but for U+007F, which JSON leaves raw. */
function tomlString(value: string): string {
  return JSON.stringify(value).replace(/\u007f/g, "\\u007F");
}

/** Gemini CLI's `mcpServers` of `settings.json`; `trust: true`, as `--yolo` trusts the turn's other tools. */
export function geminiMcpServers(servers: McpServers): Json {
  const out: Json = {};
  for (const [name, server] of Object.entries(servers)) {
    out[name] = isStdioServer(server)
      ? { command: server.command, args: server.args, env: server.env, trust: true }
      : { httpUrl: server.url, trust: true };
  }
  return out;
}

/** OpenCode's `mcp` of `opencode.json`. */
export function opencodeMcp(servers: McpServers): Json {
  const out: Json = {};
  for (const [name, server] of Object.entries(servers)) {
    out[name] = isStdioServer(server)
      ? { type: "local", command: [server.command, ...server.args], environment: server.env, enabled: true }
      : { type: "remote", url: server.url, enabled: true };
  }
  return out;
}

/** Copilot CLI's `--additional-mcp-config` JSON. */
export function copilotMcpConfig(servers: McpServers): Json {
  const out: Json = {};
  for (const [name, server] of Object.entries(servers)) {
    out[name] = isStdioServer(server)
      ? { type: "local", command: server.command, args: server.args, env: server.env, tools: ["*"] }
      : { type: "http", url: server.url, tools: ["*"] };
  }
  return { mcpServers: out };
}
