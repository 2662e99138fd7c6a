import { z } from "zod";

/**
 * What an agent task brings besides its prompt (docs/agents.md, "MCP servers, setup and copied
 * files"): MCP servers its agent gets in its own config format, a setup command run in the
 * worktree before the first turn, and files copied into the worktree from a folder of the
 * runner's. A task names them, and so does the runner's config per repository (`agent_repos:`).
 */

/** The name an MCP server goes by in every agent's config (a TOML bare key, a JSON key, a tool prefix). */
export const McpServerName = z
  .string()
  .regex(
    /^[A-Za-z][A-Za-z0-9_-]{0,39}$/,
    "an MCP server name is a letter, then up to 39 letters, digits, _ and - (e.g. files)",
  );

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name");

/** A server the agent CLI starts itself, inside the turn's sandbox, speaking MCP on its stdin and stdout. */
export const McpStdioServer = z.strictObject({
  command: z
    .string()
    .min(1)
    .max(4096)
    .describe("the program, found in the PATH inside the turn's sandbox (or an absolute path there)"),
  args: z.array(z.string().max(4096)).max(64).default([]),
  env: z.record(envName, z.string().max(16_384)).default({}),
});
export type McpStdioServer = z.infer<typeof McpStdioServer>;

/** A server reached over HTTP (MCP's streamable HTTP transport): its host joins the sandbox's egress for this task. */
export const McpUrlServer = z.strictObject({
  url: z
    .string()
    .max(2048)
    .refine((url) => /^https?:\/\/[^/?#\s]+/i.test(url) && URL.canParse(url), {
      message: "an MCP server's url is an http:// or https:// URL",
    })
    .refine((url) => !/^[a-z]+:\/\/[^/@]*@/i.test(url), {
      message: "an MCP server's url holds a user or password; none may be written in a URL",
    }),
});
export type McpUrlServer = z.infer<typeof McpUrlServer>;

export const McpServer = z.union([McpStdioServer, McpUrlServer]);
export type McpServer = z.infer<typeof McpServer>;

/** At most this many MCP servers per task: each one is a process or a connection of every turn. */
export const maxMcpServers = 16;

export const McpServers = z
  .record(McpServerName, McpServer)
  .refine((servers) => Object.keys(servers).length <= maxMcpServers, {
    message: `at most ${maxMcpServers} MCP servers per task`,
  });
export type McpServers = z.infer<typeof McpServers>;

/** A path under the runner's folder of files to copy (`agent_files_dir`): relative, without `..`. */
export const CopiedFile = z
  .string()
  .min(1)
  .max(1024)
  .refine((path) => !path.startsWith("/") && !path.split(/[\\/]/).includes("..") && !path.includes("\0"), {
    message:
      "a copied file is a path relative to the runner's agent_files_dir, without .. (e.g. .env or config/local.json)",
  });

/** The most a setup command may be: a script, not a program. */
export const maxSetupChars = 64 * 1024;

export const SetupCommand = z.string().min(1).max(maxSetupChars);

/** Whether a server is started by the agent CLI (stdio) rather than reached over HTTP. */
export function isStdioServer(server: McpServer): server is McpStdioServer {
  return "command" in server;
}

/** The agents whose CLI takes MCP servers from runyard (the built-in loop has no MCP client). */
export const mcpAgents: readonly string[] = ["claude_code", "codex", "gemini", "opencode", "copilot"];

/**
 * One entry of a runner's `agent_repos:` (its config file): what every agent task on a matching
 * repository gets, besides what the task names itself.
 */
export const AgentRepoSettings = z.strictObject({
  /**
   * The repository's URL as `host/owner/name` (scheme, user and `.git` left out) matched by a
   * pattern: `*` is any run of characters but `/`, `**` any run at all (`github.com/acme/*`).
   */
  match: z.string().min(1),
  mcp_servers: McpServers.default({}),
  setup: SetupCommand.optional(),
  copy_files: z.array(CopiedFile).default([]),
});
export type AgentRepoSettings = z.infer<typeof AgentRepoSettings>;

/** A repository URL as `agent_repos:` patterns match it: `host/owner/name`, lower-case host. */
export function repoMatchName(url: string): string {
  let rest = url.trim();
  const scp = /^(?:[^@/:]+@)?([^/:]+):(?!\/)(.*)$/.exec(rest);
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) rest = `${scp[1]}/${scp[2]}`;
  rest = rest.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/^[^@/]*@/, "");
  rest = rest.replace(/\/+$/, "").replace(/\.git$/, "");
  const slash = rest.indexOf("/");
  return slash === -1 ? rest.toLowerCase() : `${rest.slice(0, slash).toLowerCase()}${rest.slice(slash)}`;
}

/** Whether `pattern` (see `AgentRepoSettings.match`) matches the repository at `url`. */
export function repoMatches(pattern: string, url: string): boolean {
  const source = pattern
    .split("**")
    .map((part) =>
      part
        .split("*")
        .map((text) => text.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join("[^/]*"),
    )
    .join(".*");
  return new RegExp(`^${source}$`).test(repoMatchName(url));
}
