import { constants, copyFileSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { firstSetting } from "./agent-setting.js";
import { agentError, cliTurn, jsonObject, readJsonObject, writePrivateJson } from "./cli-agent.js";
import { claudeCodeMcpConfig } from "./mcp-config.js";
import { costFor } from "./prices.js";
import { DEFAULT_LLM_RETRIES } from "./retry-count.js";
import type {
  AgentAdapter,
  AgentErrorCode,
  AgentInvocation,
  AgentOutput,
  AgentSetup,
  CliStreamParser,
  RunnerEnv,
  SetupContext,
} from "./types.js";

/**
 * Claude Code (`@anthropic-ai/claude-code`) in print mode with its stream-json output.
 *
 * Facts of 2.1.197 (recorded in test/fixtures/agents/claude_code/, see test/model-server/README.md):
 * - one `assistant` line per content block, several lines sharing one `message.id`;
 * - an `assistant` line's `usage` is the stream's start: final input tokens, output a placeholder (1);
 *   `result.modelUsage` (per model, with `costUSD`) and `result.total_cost_usd` hold the true totals;
 * - `result.subtype` stays "success" on API errors: `is_error` and `api_error_status` tell;
 *   an error turns into a `<synthetic>` assistant message with an `error` field;
 * - it retries 401 and 429 itself (`CLAUDE_CODE_MAX_RETRIES`, default 10: ~178 s for a bad key
 *   without `x-should-retry: false`; 3 retries take ~5 s), each reported as `system/api_retry`
 *   (`error_status` 401, `error` "authentication_failed"); it waits forever on a quiet stream
 *   (the supervisor's stall watch stops it);
 * - it keeps its sessions (`projects/<cwd>/<session id>.jsonl`) and config in `$CLAUDE_CONFIG_DIR`,
 *   else `$HOME/.claude`: a follow-up's `--resume ID` finds the session there.
 */
export const claudeCodeAgent: AgentAdapter = {
  name: "claude_code",
  package: { name: "@anthropic-ai/claude-code", version: "2.1.197", bin: "claude" },
  credentialEnv: ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"],
  setup: claudeCodeSetup,
  run: cliTurn("claude_code", (invocation, bin, retries, runner) => {
    const configDir = claudeConfigDir(invocation, runner);
    const mcp = writeMcpConfig(invocation);
    const command = claudeCodeCommand(
      { ...invocation, extraArgs: [...mcp, ...invocation.extraArgs] },
      bin,
      retries,
    );
    return {
      argv: command.argv,
      env: {
        ...(configDir ? { CLAUDE_CONFIG_DIR: configDir } : {}),
        // In print mode it connects to MCP servers while the first model call goes out, which
        // then lacks their tools: the task's servers are connected (or failed) first.
        ...(mcp.length > 0 ? { MCP_CONNECTION_NONBLOCKING: "false" } : {}),
        ...command.env,
      },
      parser: claudeCodeParser(),
    };
  }),
};

/** The CLI's argv and the env laid over the runner's; the benchmark starts it by this too, so no drift. */
export function claudeCodeCommand(
  invocation: Pick<AgentInvocation, "prompt" | "model" | "sessionId" | "extraArgs" | "env">,
  bin: string,
  retries: number = DEFAULT_LLM_RETRIES,
): { argv: string[]; env: Record<string, string> } {
  const argv = [
    bin,
    "-p",
    "--output-format",
    "stream-json",
    "--verbose",
    "--dangerously-skip-permissions",
    ...(invocation.model ? ["--model", invocation.model] : []),
    ...(invocation.sessionId ? ["--resume", invocation.sessionId] : []),
    ...invocation.extraArgs,
    // After `--`, a prompt that starts with a dash is not read as a flag.
    "--",
    invocation.prompt,
  ];
  const env = {
    // It refuses --dangerously-skip-permissions as root unless told it is sandboxed (it is: the workspace).
    IS_SANDBOX: "1",
    // No telemetry, update checks or side calls: a run talks to its model and nothing else.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_AUTOUPDATER: "1",
    // Its default is 10 retries, a 401 included (~3 minutes for a bad key): llm_retry_count caps it,
    // unless the run's env names a count of its own.
    CLAUDE_CODE_MAX_RETRIES: String(retries),
    ...invocation.env,
  };
  return { argv, env };
}

/**
 * Claude Code's CLAUDE_CONFIG_DIR: undefined when the run's env sets one (the CLI reads it there), else
 * `<conversation state>/claude`, which outlives the turn, unlike the sandbox's per-command empty `$HOME`
 * (a session kept there was gone by the follow-up). Into it go, anew each turn, the runner user's
 * `settings.json` and `CLAUDE.md` (of the runner's CLAUDE_CONFIG_DIR, else `~/.claude`), never their
 * login (`.credentials.json`: a turn's key is in its env) nor another conversation's files. Without a
 * state folder (no conversation kept) the CLI uses `~/.claude`.
 */
function claudeConfigDir(invocation: Pick<AgentInvocation, "env">, runner: RunnerEnv): string | undefined {
  const state = invocation.env.RUNYARD_AGENT_STATE_DIR;
  if (invocation.env.CLAUDE_CONFIG_DIR || !state) return undefined;
  const dir = join(state, "claude");
  // The last turn could write here: a link left in the folder's place is removed, never followed.
  if (lstatSync(dir, { throwIfNoEntry: false })?.isDirectory() === false) rmSync(dir, { force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Never a folder the run's env names: the runner would copy what a member chose into their turn.
  const users = runner.CLAUDE_CONFIG_DIR || (runner.HOME ? join(runner.HOME, ".claude") : undefined);
  for (const name of userFiles) {
    // What the user removed since the last turn goes from the conversation's copy too.
    rmSync(join(dir, name), { force: true });
    if (!users) continue;
    try {
      copyFileSync(join(users, name), join(dir, name), constants.COPYFILE_EXCL);
    } catch {
      // Absent (or unreadable): Claude Code's defaults.
    }
  }
  return dir;
}

/** The user's own Claude Code files laid into each conversation's config folder. */
const userFiles = ["settings.json", "CLAUDE.md"];

/**
 * Claude Code's endpoint and model, first found wins: the run's env, the runner's, the `env` (and
 * `model`) of `~/.claude/settings.json` (`$CLAUDE_CONFIG_DIR`'s when set), Anthropic's default.
 */
export function claudeCodeSetup(context: SetupContext): AgentSetup {
  const { run, runner } = context;
  const dir =
    run.CLAUDE_CONFIG_DIR ||
    runner.CLAUDE_CONFIG_DIR ||
    (run.HOME || runner.HOME ? join(run.HOME || runner.HOME || "", ".claude") : undefined);
  const shown =
    run.CLAUDE_CONFIG_DIR || runner.CLAUDE_CONFIG_DIR ? `${dir}/settings.json` : "~/.claude/settings.json";
  const settings = dir ? readJsonObject<ClaudeSettings>(join(dir, "settings.json")) : {};
  return {
    endpoint: firstSetting(context, {
      env: "ANTHROPIC_BASE_URL",
      file: settings.env?.ANTHROPIC_BASE_URL,
      shown,
      fallback: "https://api.anthropic.com",
    }),
    model: firstSetting(context, {
      model: true,
      env: "ANTHROPIC_MODEL",
      file: settings.env?.ANTHROPIC_MODEL ?? settings.model,
      shown,
      fallback: "(Claude Code's default)",
    }),
  };
}

interface ClaudeSettings {
  model?: string;
  env?: Record<string, string>;
}

interface ContentBlock {
  type?: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
  tool_use_id?: string;
  content?: unknown;
  is_error?: boolean;
}

interface TokenCounts {
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

interface StreamLine {
  type?: string;
  subtype?: string;
  session_id?: string;
  model?: string;
  message?: { id?: string; model?: string; content?: unknown; usage?: TokenCounts };
  error?: string;
  is_error?: boolean;
  api_error_status?: number | null;
  result?: string;
  errors?: string[];
  total_cost_usd?: number;
  usage?: TokenCounts;
  modelUsage?: Record<string, ModelUsage>;
  attempt?: number;
  max_retries?: number;
  retry_delay_ms?: number;
  error_status?: number | null;
}

interface ModelUsage {
  inputTokens?: number;
  outputTokens?: number;
  cacheReadInputTokens?: number;
  cacheCreationInputTokens?: number;
  costUSD?: number;
}

/**
 * Reads stream-json. Usage comes in two parts adding up to the CLI's totals: each request's input
 * tokens (priced from prices.ts) on its first line, so a budget can stop a runaway turn and a killed
 * turn still shows its use; then per model from the `result` line, its output tokens and the CLI's
 * cost less what was counted. Input tokens include cache reads and writes: all were sent to the model.
 */
export function claudeCodeParser(): CliStreamParser {
  const countedMessages = new Set<string>();
  /** Per model (as the result names it, without a "[1m]" context suffix): what was counted live. */
  const counted = new Map<string, { inputTokens: number; costUsd: number }>();
  let mainModel: string | undefined;
  let resultSeen = false;
  let syntheticError: string | undefined;

  const assistant = (line: StreamLine): AgentOutput[] => {
    const message = line.message ?? {};
    if (message.model === "<synthetic>") {
      // The CLI's own text for an API error; the `result` line reports it as the failure.
      syntheticError = line.error;
      return [];
    }
    const outputs: AgentOutput[] = [];
    if (message.id && message.usage && !countedMessages.has(message.id)) {
      countedMessages.add(message.id);
      const model = modelName(message.model ?? mainModel ?? "");
      const inputTokens = promptTokens(message.usage);
      const costUsd = costFor(model, inputTokens, 0) ?? 0;
      const sum = counted.get(model) ?? { inputTokens: 0, costUsd: 0 };
      counted.set(model, { inputTokens: sum.inputTokens + inputTokens, costUsd: sum.costUsd + costUsd });
      outputs.push({ type: "usage", ...(model ? { model } : {}), inputTokens, outputTokens: 0, costUsd });
    }
    for (const block of blocks(message.content)) {
      if (block.type === "text" && block.text) {
        outputs.push({ type: "message", role: "assistant", text: block.text });
      } else if (block.type === "tool_use") {
        outputs.push({
          type: "tool_call",
          callId: block.id ?? "",
          tool: block.name ?? "",
          input: block.input ?? {},
        });
      }
    }
    return outputs;
  };

  const result = (line: StreamLine): AgentOutput[] => {
    resultSeen = true;
    const outputs = restOfUsage(line, counted, mainModel);
    if (line.is_error || (line.subtype !== undefined && line.subtype !== "success")) {
      outputs.push({ type: "failure", error: resultFailure(line, syntheticError) });
    }
    return outputs;
  };

  return {
    line(text) {
      // Not every line is ours to read (a warning printed to stdout): skip it.
      const line = jsonObject<StreamLine>(text);
      if (!line) return [];
      if (line.type === "system" && line.subtype === "init") {
        mainModel = line.model;
        return line.session_id ? [{ type: "session", sessionId: line.session_id }] : [];
      }
      if (line.type === "system" && line.subtype === "api_retry") {
        // A retry is shown, but is no sign of life: a CLI that only retries is stuck.
        const why = line.error_status ? `HTTP ${line.error_status}` : (line.error ?? "an error");
        const delay = Math.round(line.retry_delay_ms ?? 0);
        return [
          {
            type: "notice",
            level: "warn",
            text: `model API retry ${line.attempt ?? "?"}/${line.max_retries ?? "?"} after ${why}, in ${delay} ms`,
          },
        ];
      }
      if (line.type === "assistant") return assistant(line);
      if (line.type === "user") return toolResults(line);
      if (line.type === "result") return result(line);
      return [];
    },
    async end({ exitCode, stderrTail }) {
      if (resultSeen || exitCode === 0) return { outputs: [] };
      const how = exitCode === null ? "it was killed" : `exit code ${exitCode}`;
      return {
        outputs: [],
        error: agentError(
          "AGENT_CRASHED",
          `Claude Code ended without a result (${how})${stderrTail ? `: ${stderrTail}` : ""}`,
        ),
      };
    },
  };
}

function toolResults(line: StreamLine): AgentOutput[] {
  const outputs: AgentOutput[] = [];
  for (const block of blocks(line.message?.content)) {
    if (block.type !== "tool_result") continue;
    outputs.push({
      type: "tool_result",
      callId: block.tool_use_id ?? "",
      output: resultText(block.content),
      ...(block.is_error ? { isError: true } : {}),
    });
  }
  return outputs;
}

/** The usage the `result` line adds to what was counted live, per model. */
function restOfUsage(
  line: StreamLine,
  counted: Map<string, { inputTokens: number; costUsd: number }>,
  mainModel: string | undefined,
): AgentOutput[] {
  const perModel = Object.entries(line.modelUsage ?? {}).map(([name, usage]) => ({
    model: modelName(name),
    inputTokens:
      (usage.inputTokens ?? 0) + (usage.cacheReadInputTokens ?? 0) + (usage.cacheCreationInputTokens ?? 0),
    outputTokens: usage.outputTokens ?? 0,
    costUsd: usage.costUSD,
  }));
  if (perModel.length === 0 && line.usage) {
    perModel.push({
      model: modelName(mainModel ?? ""),
      inputTokens: promptTokens(line.usage),
      outputTokens: line.usage.output_tokens ?? 0,
      costUsd: line.total_cost_usd,
    });
  }
  const outputs: AgentOutput[] = [];
  for (const total of perModel) {
    const live = counted.get(total.model) ?? { inputTokens: 0, costUsd: 0 };
    // Never below zero: a table price above the CLI's (a cache discount) must not make a negative cost.
    const inputTokens = Math.max(0, total.inputTokens - live.inputTokens);
    const costUsd = total.costUsd === undefined ? undefined : Math.max(0, total.costUsd - live.costUsd);
    if (inputTokens === 0 && total.outputTokens === 0 && !costUsd) continue;
    outputs.push({
      type: "usage",
      ...(total.model ? { model: total.model } : {}),
      inputTokens,
      outputTokens: total.outputTokens,
      ...(costUsd === undefined ? {} : { costUsd }),
    });
  }
  return outputs;
}

function resultFailure(line: StreamLine, syntheticError: string | undefined) {
  const text = line.errors?.join("; ") || line.result || `Claude Code failed (${line.subtype ?? "error"})`;
  const status = line.api_error_status ?? undefined;
  let code: AgentErrorCode = "AGENT_CRASHED";
  if (line.subtype === "error_max_turns") code = "AGENT_TURN_LIMIT";
  else if (status === 401 || status === 403 || syntheticError === "authentication_failed")
    code = "AGENT_AUTH";
  else if (status === 429 || syntheticError === "rate_limit") code = "AGENT_RATE_LIMIT";
  return agentError(code, status ? `${text} (HTTP ${status})` : text);
}

function blocks(content: unknown): ContentBlock[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  return Array.isArray(content) ? (content as ContentBlock[]) : [];
}

function resultText(content: unknown): string {
  if (typeof content === "string") return content;
  return blocks(content)
    .map((block) => (block.type === "text" ? (block.text ?? "") : `[${block.type ?? "content"}]`))
    .join("\n");
}

function promptTokens(usage: TokenCounts): number {
  return (
    (usage.input_tokens ?? 0) +
    (usage.cache_creation_input_tokens ?? 0) +
    (usage.cache_read_input_tokens ?? 0)
  );
}

/** `claude-opus-4-8[1m]` (a context-window variant) is priced and reported as `claude-opus-4-8`. */
function modelName(name: string): string {
  return name.replace(/\[[^\]]*\]$/, "");
}

/** Writes the task's MCP servers as a `--mcp-config` file in scratch; returns the args naming it. */
function writeMcpConfig(invocation: Pick<AgentInvocation, "mcpServers" | "scratchDir">): string[] {
  const servers = invocation.mcpServers ?? {};
  if (Object.keys(servers).length === 0) return [];
  const path = join(invocation.scratchDir, "mcp-config.json");
  writePrivateJson(path, claudeCodeMcpConfig(servers));
  return ["--mcp-config", path];
}
