import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { RunyardError } from "../core/errors.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { follow } from "./runs.js";

export interface AgentRunFlags {
  agent?: string;
  agents?: string;
  model?: string;
  repo?: string;
  base?: string;
  branch?: string;
  push?: boolean;
  cwd?: string;
  test?: string;
  playbook?: string;
  sandbox?: string | boolean;
  sandboxMemory?: string;
  sandboxNetwork?: string;
  timeout?: string;
  stall?: string;
  budgetTokens?: string;
  budgetUsd?: string;
  secret: string[];
  env: string[];
  arg: string[];
  group?: string;
  label: string[];
  mcp?: string[];
  mcpFile?: string;
  setup?: string;
  copyFile?: string[];
  follow?: boolean;
  json?: boolean;
  quiet?: boolean;
}

/** The image `docker build -t runyard-agent -f docker/agent.Dockerfile .` makes. */
const defaultAgentImage = "runyard-agent";

function positive(flag: string, value: string | undefined, integer = true): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new RunyardError("USAGE", `${flag} ${value}: expected a positive ${integer ? "whole " : ""}number`);
  }
  return n;
}

function envPairs(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new RunyardError("USAGE", `--env ${pair}: expected NAME=value`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

/** The native agent run body from the command line. */
export async function agentRunBody(prompt: string, flags: AgentRunFlags): Promise<Record<string, unknown>> {
  if (flags.agent && flags.agents) {
    throw new RunyardError("USAGE", "give --agent or --agents, not both", {
      hint: "One agent: --agent codex; a fan-out: --agents claude_code,codex,opencode.",
    });
  }
  if (flags.push && !flags.repo) {
    throw new RunyardError("USAGE", "--push needs --repo URL", {
      hint: "The branch is pushed to the repo's remote.",
    });
  }
  if ((flags.sandboxMemory || flags.sandboxNetwork) && !flags.sandbox) {
    throw new RunyardError(
      "USAGE",
      `${flags.sandboxMemory ? "--sandbox-memory" : "--sandbox-network"} goes with --sandbox`,
      { hint: "Run the agent in a container with --sandbox [IMAGE], then size it with --sandbox-memory 2g." },
    );
  }
  if (flags.sandboxNetwork && !["model-only", "none"].includes(flags.sandboxNetwork)) {
    throw new RunyardError(
      "USAGE",
      `--sandbox-network ${flags.sandboxNetwork}: expected model-only or none`,
      {
        hint: "model-only lets the agent reach its model endpoint and nothing else; none gives it no network.",
      },
    );
  }
  const sandbox = flags.sandbox
    ? {
        image: typeof flags.sandbox === "string" ? flags.sandbox : defaultAgentImage,
        ...(flags.sandboxMemory ? { memory: flags.sandboxMemory } : {}),
        ...(flags.sandboxNetwork ? { network: flags.sandboxNetwork } : {}),
      }
    : undefined;
  const timeout = positive("--timeout", flags.timeout);
  const stall = positive("--stall", flags.stall);
  const tokens = positive("--budget-tokens", flags.budgetTokens);
  const usd = positive("--budget-usd", flags.budgetUsd, false);
  let playbook: string | undefined;
  if (flags.playbook) {
    try {
      playbook = await readFile(flags.playbook, "utf8");
    } catch {
      throw new RunyardError("FILE_NOT_FOUND", `playbook file "${flags.playbook}" does not exist`);
    }
  }
  const mcp = await mcpServersOf(flags.mcp ?? [], flags.mcpFile);
  return {
    kind: "agent",
    ...(flags.agents
      ? {
          agents: flags.agents
            .split(",")
            .map((a) => a.trim())
            .filter(Boolean),
        }
      : { agent: flags.agent ?? "claude_code" }),
    prompt,
    ...(flags.model ? { model: flags.model } : {}),
    ...(flags.repo
      ? {
          repo: {
            url: flags.repo,
            ...(flags.base ? { base: flags.base } : {}),
            ...(flags.branch ? { branch: flags.branch } : {}),
            push: Boolean(flags.push),
          },
        }
      : {}),
    ...(flags.cwd ? { cwd: flags.cwd } : {}),
    ...(flags.test || playbook
      ? { tests: { ...(flags.test ? { command: flags.test } : {}), ...(playbook ? { playbook } : {}) } }
      : {}),
    ...(sandbox ? { sandbox } : {}),
    ...(timeout ? { timeout_secs: timeout } : {}),
    ...(stall ? { stall_secs: stall } : {}),
    ...(tokens || usd ? { budget: { ...(tokens ? { tokens } : {}), ...(usd ? { usd } : {}) } } : {}),
    secrets: flags.secret,
    env: envPairs(flags.env),
    extra_args: flags.arg,
    ...(Object.keys(mcp).length > 0 ? { mcp_servers: mcp } : {}),
    ...(flags.setup ? { setup: flags.setup } : {}),
    ...(flags.copyFile && flags.copyFile.length > 0 ? { copy_files: flags.copyFile } : {}),
    ...(flags.group ? { group: flags.group } : {}),
    labels: flags.label,
  };
}

/**
 * `--mcp NAME=URL` (http or https) or `--mcp NAME=COMMAND ARGS...` (words split as a shell splits
 * them, quotes kept together), over the servers of `--mcp-file` (a YAML or JSON map of names to
 * `{command, args, env}` or `{url}`); the server checks each.
 */
async function mcpServersOf(pairs: string[], file: string | undefined): Promise<Record<string, unknown>> {
  let servers: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      throw new RunyardError("FILE_NOT_FOUND", `MCP servers file "${file}" does not exist`);
    }
    const parsed: unknown = parseYaml(text);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new RunyardError(
        "USAGE",
        `--mcp-file ${file}: expected a map of server names to {command, args, env} or {url}`,
      );
    }
    servers = { ...(parsed as Record<string, unknown>) };
  }
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    const value = pair.slice(at + 1).trim();
    if (at <= 0 || value === "") {
      throw new RunyardError("USAGE", `--mcp ${pair}: expected NAME=COMMAND [ARGS...] or NAME=URL`, {
        hint: 'E.g. --mcp files="npx -y @modelcontextprotocol/server-filesystem ." or --mcp docs=https://mcp.example.com/mcp',
      });
    }
    const name = pair.slice(0, at);
    if (/^https?:\/\//i.test(value)) {
      servers[name] = { url: value };
      continue;
    }
    const [command, ...args] = shellWords(value, `--mcp ${pair}`);
    servers[name] = { command, args };
  }
  return servers;
}

/** `text` split into words as a POSIX shell splits them: blanks between, '...' and "..." kept whole, \ escaping. */
function shellWords(text: string, flag: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  // Inside quotes a word has begun (`word ??= ""` where the quote opened).
  const add = (piece: string | undefined) => {
    word = (word ?? "") + (piece ?? "");
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else add(c);
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string)) add(text[++i]);
      else add(c);
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === "\\" && i + 1 < text.length) {
      add(text[++i]);
    } else {
      add(c);
    }
  }
  if (quote) throw new RunyardError("USAGE", `${flag}: a ${quote} quote is not closed`);
  if (word !== undefined) words.push(word);
  return words;
}

/** `runyard agent run "PROMPT"`: submits an agent task and, with --follow, streams it like `runyard run`. */
export async function agentRun(prompt: string, flags: AgentRunFlags, ctx: CliContext): Promise<number> {
  const api = apiClient(ctx);
  const { run_id } = await api.submit<{ run_id: string }>(
    "POST",
    "/api/runs",
    await agentRunBody(prompt, flags),
  );
  return submitted(run_id, api.baseUrl, flags, ctx);
}

/** `runyard agent send RUN "TEXT"`: the next turn of a finished agent run. */
export async function agentSend(
  runId: string,
  text: string,
  flags: { follow?: boolean; json?: boolean; quiet?: boolean },
  ctx: CliContext,
): Promise<number> {
  const api = apiClient(ctx);
  const { run_id } = await api.submit<{ run_id: string }>(
    "POST",
    `/api/runs/${encodeURIComponent(runId)}/messages`,
    { text },
  );
  return submitted(run_id, api.baseUrl, flags, ctx);
}

/**
 * `runyard agent push RUN [--pull-request]`: pushes a finished run's branch (its task did not),
 * and with --pull-request opens a pull request for it through the repo's forge.
 */
export async function agentPush(
  runId: string,
  flags: { pullRequest?: boolean; follow?: boolean; json?: boolean; quiet?: boolean },
  ctx: CliContext,
): Promise<number> {
  const api = apiClient(ctx);
  const route = flags.pullRequest ? "pull-request" : "push";
  const { run_id } = await api.submit<{ run_id: string }>(
    "POST",
    `/api/runs/${encodeURIComponent(runId)}/${route}`,
  );
  return submitted(run_id, api.baseUrl, flags, ctx);
}

async function submitted(
  runId: string,
  server: string,
  flags: { follow?: boolean; json?: boolean; quiet?: boolean },
  ctx: CliContext,
): Promise<number> {
  if (!flags.follow) {
    ctx.stdout.write(flags.json ? `${JSON.stringify({ run_id: runId })}\n` : `${runId}\n`);
    return 0;
  }
  if (!flags.json && !flags.quiet) ctx.stderr.write(`agent run ${runId} submitted to ${server}\n`);
  return follow(apiClient(ctx), runId, flags, ctx);
}
