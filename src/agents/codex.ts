import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { firstSetting } from "./agent-setting.js";
import { agentError, cliTurn, jsonObject } from "./cli-agent.js";
import { type CodexUserConfig, codexHomeOf, readCodexConfig } from "./codex-config.js";
import { codexMcpOverrides } from "./mcp-config.js";
import { costFor } from "./prices.js";
import type {
  AgentAdapter,
  AgentErrorCode,
  AgentOutput,
  AgentSetup,
  CliStreamParser,
  SetupContext,
} from "./types.js";

/**
 * Codex (`@openai/codex`) in `codex exec --json` mode.
 *
 * Facts of 0.169.0 (node 20; recorded in test/fixtures/agents/codex/):
 * - it reads `$CODEX_HOME/config.toml` (`~/.codex/config.toml` when CODEX_HOME is unset), and
 *   `-c key=value` overrides lay over it key by key (`-c model_providers.corp.stream_max_retries=1`
 *   keeps the rest of the user's `[model_providers.corp]`);
 * - it ignores `OPENAI_BASE_URL` (talks to OpenAI, or prints "Reconnecting... waiting for network"
 *   without end when unreachable): a provider `-c model_providers.runyard={...}`
 *   (`wire_api="responses"`, `env_key` naming the key's variable) points it at a server;
 * - it knows a fixed list of models (`gpt-5.5`, ...): any other name works but prints an `error`
 *   item "Model metadata for `X` not found" and gets fewer tools (no `apply_patch`);
 * - its tools are `exec_command` (`{cmd}`) and, for known models, `apply_patch` as a freeform
 *   (`custom`) tool; `item.started` / `item.completed` report `command_execution` and `file_change`;
 * - `turn.completed.usage` is the **session's** running total: the adapter subtracts what the
 *   rollout file held before the turn (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*-<id>.jsonl`,
 *   `token_count` events);
 * - it retries every failed request, 401 included (`stream_max_retries`, default 5, each logged
 *   as an `error` event "Reconnecting... n/m (...)"), honours `retry-after`, then ends with
 *   `turn.failed` and exit 1; a quiet stream fails only after `stream_idle_timeout_ms` (default
 *   300 s) per attempt; a refused connection is retried without end;
 * - `CODEX_HOME` holds its sessions (and sqlite state); under /tmp it warns that it cannot
 *   create helper binaries and carries on.
 */
export const codexAgent: AgentAdapter = {
  name: "codex",
  package: { name: "@openai/codex", version: "0.169.0", bin: "codex" },
  credentialEnv: ["OPENAI_API_KEY", "CODEX_API_KEY"],
  setup: (context) => codexSetup(context).setup,
  run: cliTurn("codex", async (invocation, bin, retries, runner) => {
    const env = invocation.env;
    const resolved = codexSetup({
      run: env,
      runner,
      ...(invocation.model ? { model: invocation.model } : {}),
    });
    // The user's Codex home holds their config, login and sessions (a follow-up resumes there);
    // only a runner without HOME uses a folder of runyard's that outlives the turn.
    const codexHome =
      resolved.home?.home ?? join(env.RUNYARD_AGENT_STATE_DIR || invocation.scratchDir, "codex");
    const ownHome = !resolved.home || resolved.home.set;
    if (ownHome) await mkdir(codexHome, { recursive: true, mode: 0o700 });
    const before = invocation.sessionId ? await sessionTotals(codexHome, invocation.sessionId) : undefined;
    const argv = [
      bin,
      "exec",
      "--json",
      "--dangerously-bypass-approvals-and-sandbox",
      "--skip-git-repo-check",
      // Offline and quiet: no plugin sync, no analytics.
      "--disable",
      "plugins",
      "-c",
      "analytics.enabled=false",
      ...providerArgs(resolved, env, retries),
      ...codexMcpOverrides(invocation.mcpServers ?? {}),
      ...(invocation.model ? ["-m", invocation.model] : []),
      ...invocation.extraArgs,
      ...(invocation.sessionId ? ["resume", invocation.sessionId] : []),
      // After `--`, a prompt that starts with a dash is not read as a flag.
      "--",
      invocation.prompt,
    ];
    return {
      argv,
      env: { ...env, ...(ownHome ? { CODEX_HOME: codexHome } : {}) },
      parser: codexParser({
        ...(invocation.model ? { model: invocation.model } : {}),
        ...(before ? { before } : {}),
      }),
    };
  }),
};

const OPENAI_URL = "https://api.openai.com/v1";

interface CodexResolved {
  setup: AgentSetup;
  home: ReturnType<typeof codexHomeOf>;
  config: CodexUserConfig | undefined;
}

/**
 * A turn's endpoint and model, first found wins: the run's env (`OPENAI_BASE_URL`), the runner's,
 * the user's Codex config, Codex's default; an env endpoint becomes runyard's provider (`providerArgs`).
 */
function codexSetup(context: SetupContext): CodexResolved {
  const { run, runner } = context;
  const home = codexHomeOf(run, runner);
  const config = home ? readCodexConfig(home.home) : undefined;
  const file = home?.set ? join(home.home, "config.toml") : "~/.codex/config.toml";
  const endpoint = firstSetting(context, {
    env: "OPENAI_BASE_URL",
    file: config?.baseUrl,
    shown: file,
    fallback: OPENAI_URL,
  });
  const model = firstSetting(context, {
    model: true,
    file: config?.model,
    shown: file,
    fallback: "(Codex's default)",
  });
  return { setup: { endpoint, model }, home, config };
}

/**
 * The `-c` overrides over the user's config. An env endpoint or a key the run brought gets runyard's
 * provider (so neither a stored login nor OpenAI's URL is used by accident); a provider of the
 * user's keeps all but its retries, capped at the run's count; else Codex runs as its user set it up.
 */
function providerArgs(
  resolved: CodexResolved,
  run: Readonly<Record<string, string>>,
  retries: number,
): string[] {
  const { endpoint } = resolved.setup;
  const fromEnv = endpoint.source === "run env" || endpoint.source === "runner env";
  if (fromEnv || (endpoint.source === "default" && run.OPENAI_API_KEY)) {
    const provider = [
      `name="runyard"`,
      `base_url=${JSON.stringify(endpoint.value)}`,
      `env_key="OPENAI_API_KEY"`,
      `wire_api="responses"`,
      `stream_max_retries=${retries}`,
      `request_max_retries=${retries}`,
    ].join(",");
    return ["-c", "model_provider=runyard", "-c", `model_providers.runyard={${provider}}`];
  }
  const own = resolved.config?.providerInFile ? resolved.config.provider : undefined;
  if (own && /^[A-Za-z0-9_-]+$/.test(own)) {
    return [
      "-c",
      `model_providers.${own}.stream_max_retries=${retries}`,
      "-c",
      `model_providers.${own}.request_max_retries=${retries}`,
    ];
  }
  return [];
}

/** Token totals of a session so far, from its rollout file; zero when none is found. */
export async function sessionTotals(codexHome: string, sessionId: string): Promise<TokenTotals> {
  const file = await findRollout(join(codexHome, "sessions"), `-${sessionId}.jsonl`);
  const totals = { input: 0, output: 0 };
  if (!file) return totals;
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    if (!line.includes('"token_count"')) continue;
    try {
      const usage = (JSON.parse(line) as RolloutLine).payload?.info?.total_token_usage;
      if (usage) {
        totals.input = usage.input_tokens ?? totals.input;
        totals.output = usage.output_tokens ?? totals.output;
      }
    } catch {
      // a line cut by a crash: the earlier totals stand
    }
  }
  return totals;
}

interface RolloutLine {
  payload?: { info?: { total_token_usage?: { input_tokens?: number; output_tokens?: number } } };
}

async function findRollout(dir: string, suffix: string): Promise<string | undefined> {
  let entries: Array<{ name: string; isDirectory(): boolean }>;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const found = await findRollout(path, suffix);
      if (found) return found;
    } else if (entry.name.endsWith(suffix)) {
      return path;
    }
  }
  return undefined;
}

export interface TokenTotals {
  input: number;
  output: number;
}

interface CodexItem {
  id?: string;
  type?: string;
  text?: string;
  message?: string;
  command?: string;
  aggregated_output?: string;
  exit_code?: number | null;
  status?: string;
  changes?: Array<{ path?: string; kind?: string }>;
  server?: string;
  tool?: string;
  arguments?: unknown;
  result?: unknown;
  error?: { message?: string } | null;
  query?: string;
}

interface CodexLine {
  type?: string;
  thread_id?: string;
  item?: CodexItem;
  usage?: { input_tokens?: number; output_tokens?: number };
  error?: { message?: string };
  message?: string;
}

/** Reads `codex exec --json`; `before` is the session's token totals before this turn (resume). */
export function codexParser(options: { model?: string; before?: TokenTotals } = {}): CliStreamParser {
  const totals = { ...(options.before ?? { input: 0, output: 0 }) };
  const started = new Set<string>();
  let lastError: string | undefined;
  let failed = false;

  const toolCall = (item: CodexItem): AgentOutput | undefined => {
    const callId = item.id ?? "";
    switch (item.type) {
      case "command_execution":
        return { type: "tool_call", callId, tool: "exec_command", input: { command: item.command } };
      case "file_change":
        return { type: "tool_call", callId, tool: "apply_patch", input: { changes: item.changes ?? [] } };
      case "mcp_tool_call":
        return {
          type: "tool_call",
          callId,
          tool: `${item.server}.${item.tool}`,
          input: item.arguments ?? {},
        };
      case "web_search":
        return { type: "tool_call", callId, tool: "web_search", input: { query: item.query } };
      default:
        return undefined;
    }
  };

  const toolResult = (item: CodexItem): AgentOutput | undefined => {
    const callId = item.id ?? "";
    const failedItem = item.status === "failed" || item.status === "declined";
    switch (item.type) {
      case "command_execution": {
        const isError =
          failedItem || (item.exit_code !== null && item.exit_code !== undefined && item.exit_code !== 0);
        return {
          type: "tool_result",
          callId,
          output: item.aggregated_output ?? "",
          ...(isError ? { isError } : {}),
        };
      }
      case "file_change": {
        const output = (item.changes ?? []).map((c) => `${c.kind} ${c.path}`).join("\n");
        return { type: "tool_result", callId, output, ...(failedItem ? { isError: true } : {}) };
      }
      case "mcp_tool_call": {
        const isError = failedItem || Boolean(item.error);
        const output =
          item.error?.message ??
          (typeof item.result === "string" ? item.result : JSON.stringify(item.result ?? ""));
        return { type: "tool_result", callId, output, ...(isError ? { isError } : {}) };
      }
      case "web_search":
        return { type: "tool_result", callId, output: "" };
      default:
        return undefined;
    }
  };

  const failure = (message: string): AgentOutput => {
    failed = true;
    return { type: "failure", error: agentError(codeOf(message), message) };
  };

  return {
    line(text) {
      // Not JSON: a warning printed to stdout.
      const line = jsonObject<CodexLine>(text);
      if (!line) return [];
      switch (line.type) {
        case "thread.started":
          return line.thread_id ? [{ type: "session", sessionId: line.thread_id }] : [];
        case "item.started": {
          const item = line.item ?? {};
          const call = toolCall(item);
          if (!call) return [];
          started.add(item.id ?? "");
          return [call];
        }
        case "item.completed": {
          const item = line.item ?? {};
          if (item.type === "agent_message")
            return [{ type: "message", role: "assistant", text: item.text ?? "" }];
          // A warning such as "Model metadata for `x` not found": worth showing, not fatal.
          if (item.type === "error") return [{ type: "message", role: "system", text: item.message ?? "" }];
          const result = toolResult(item);
          if (!result) return [];
          const call = started.has(item.id ?? "") ? undefined : toolCall(item);
          return call ? [call, result] : [result];
        }
        case "turn.completed": {
          // A running total for the session: report what this turn added.
          const input = line.usage?.input_tokens ?? totals.input;
          const output = line.usage?.output_tokens ?? totals.output;
          const inputTokens = Math.max(0, input - totals.input);
          const outputTokens = Math.max(0, output - totals.output);
          totals.input = input;
          totals.output = output;
          const costUsd = options.model ? costFor(options.model, inputTokens, outputTokens) : undefined;
          return [
            {
              type: "usage",
              ...(options.model ? { model: options.model } : {}),
              inputTokens,
              outputTokens,
              ...(costUsd !== undefined ? { costUsd } : {}),
            },
          ];
        }
        case "turn.failed":
          return failed ? [] : [failure(line.error?.message ?? lastError ?? "the turn failed")];
        case "error": {
          const message = line.message ?? "";
          // "Reconnecting... 2/3 (...)" or "... waiting for network (...)": shown, no sign of life.
          if (message.startsWith("Reconnecting..."))
            return [{ type: "notice", level: "warn", text: message }];
          lastError = message;
          return [];
        }
        default:
          return [];
      }
    },
    async end({ exitCode, stderrTail }) {
      if (exitCode === 0 || failed) return { outputs: [] };
      const message = lastError ?? (stderrTail || `codex exited with ${exitCode ?? "a signal"}`);
      return { outputs: [], error: agentError(codeOf(message), message) };
    },
  };
}

/** Codex reports failures as text only ("unexpected status 401 Unauthorized: ..."). */
function codeOf(message: string): AgentErrorCode {
  if (/\b401\b|Unauthorized|invalid_api_key|Incorrect API key/i.test(message)) return "AGENT_AUTH";
  if (/\b429\b|Too Many Requests|rate.?limit|usage limit|quota/i.test(message)) return "AGENT_RATE_LIMIT";
  return "AGENT_CRASHED";
}
