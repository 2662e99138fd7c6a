import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { agentError, cliTurn, jsonObject, readJsonObject, writePrivateJson } from "./cli-agent.js";
import { copilotMcpConfig } from "./mcp-config.js";
import { type RetriedFailure, RetryCap } from "./retry-cap.js";
import type {
  AgentAdapter,
  AgentErrorCode,
  AgentInvocation,
  AgentOutput,
  AgentSetting,
  AgentSetup,
  AgentUsage,
  CliStreamParser,
  SetupContext,
} from "./types.js";

/**
 * GitHub Copilot CLI (`@github/copilot`) in prompt mode with its JSONL output.
 *
 * Facts of 1.0.102 on Node 20 (a native binary from an optional dependency; recorded in
 * test/fixtures/agents/copilot/ against the scripted model server's Chat Completions):
 * - with `COPILOT_PROVIDER_BASE_URL` (BYOK, OpenAI Chat Completions by default) and
 *   `COPILOT_OFFLINE=true` it needs no GitHub login and makes no other call;
 * - lines are session events `{type, data, ephemeral?}`: `assistant.message` (content and
 *   `toolRequests`), `tool.execution_complete` (toolCallId, success, result.content),
 *   `assistant.turn_retry` (reason), `session.error` (errorType, statusCode, message), then
 *   `result` (sessionId, exitCode: 0 even when it was killed, so the process's own code counts);
 *   `*_delta` events are ephemeral pieces of what the full events repeat;
 * - tokens are only in the `--usage-output-file` JSON (`modelMetrics` per model), no USD cost;
 * - it retries 401 twice and 429 and 5xx five times or more (honouring retry-after, else 6 s and
 *   growing) on its own, with no setting for how often: each failed attempt is a
 *   `model.call_failure` (statusCode, retryAttempt from 0), so the adapter keeps the run's
 *   `llm_retry_count` itself and stops the CLI after that many retries (`RetryCap`).
 */
export const copilotAgent: AgentAdapter = {
  name: "copilot",
  package: { name: "@github/copilot", version: "1.0.102", bin: "copilot" },
  credentialEnv: [
    "COPILOT_GITHUB_TOKEN",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "COPILOT_PROVIDER_API_KEY",
    "COPILOT_PROVIDER_BEARER_TOKEN",
  ],
  setup: copilotSetup,
  run: cliTurn("copilot", (invocation, bin, retries, runner) => {
    const usageFile = join(invocation.scratchDir, "copilot-usage.json");
    const argv = [
      bin,
      // `--prompt=` keeps a prompt that starts with a dash a prompt.
      `--prompt=${invocation.prompt}`,
      "--allow-all",
      "--no-ask-user",
      "--output-format",
      "json",
      "--no-auto-update",
      "--no-color",
      "--usage-output-file",
      usageFile,
      ...(invocation.model ? ["--model", invocation.model] : []),
      ...(invocation.sessionId ? [`--resume=${invocation.sessionId}`] : []),
      ...copilotMcpArgs(invocation),
      ...invocation.extraArgs,
    ];
    // A model provider of one's own, in the run's env or the runner's, needs no GitHub: offline
    // keeps it from calling GitHub at all (with no route to GitHub, its start waits about 20 s).
    const provider = invocation.env.COPILOT_PROVIDER_BASE_URL || runner.COPILOT_PROVIDER_BASE_URL;
    const offline: Record<string, string> = provider ? { COPILOT_OFFLINE: "true" } : {};
    return {
      argv,
      env: { ...offline, ...invocation.env },
      parser: copilotParser(usageFile, new RetryCap(retries)),
    };
  }),
};

/**
 * Copilot CLI's endpoint and model, as `copilot help providers` / `help config` tell users to set
 * them: `COPILOT_PROVIDER_BASE_URL` (run env, then runner env), else GitHub Copilot's models; the
 * run's model, else `COPILOT_MODEL` (with an own provider, `COPILOT_PROVIDER_MODEL_ID`), else, with
 * GitHub's models only, `model` in `$COPILOT_HOME/settings.json` (what `copilot config model NAME`
 * writes): 1.0.102 refuses to start an own provider without an explicit model.
 */
export function copilotSetup(context: SetupContext): AgentSetup {
  const { run, runner } = context;
  const fromEnv = (name: string): AgentSetting | undefined => {
    if (run[name]) return { value: run[name], source: "run env" };
    const value = runner[name];
    return value ? { value, source: "runner env" } : undefined;
  };
  const provider = fromEnv("COPILOT_PROVIDER_BASE_URL");
  const endpoint = provider ?? { value: "(GitHub Copilot's models)", source: "default" };
  if (context.model) return { endpoint, model: { value: context.model, source: "run" } };
  const fromEnvModel =
    fromEnv("COPILOT_MODEL") ?? (provider ? fromEnv("COPILOT_PROVIDER_MODEL_ID") : undefined);
  if (fromEnvModel) return { endpoint, model: fromEnvModel };
  if (provider) {
    return {
      endpoint,
      model: { value: "(none: its own provider needs COPILOT_MODEL or the run's model)", source: "missing" },
    };
  }
  const copilotHome = run.COPILOT_HOME || runner.COPILOT_HOME;
  const home = run.HOME || runner.HOME;
  const file = copilotHome
    ? join(copilotHome, "settings.json")
    : home
      ? join(home, ".copilot", "settings.json")
      : undefined;
  const model = file ? readJsonObject<{ model?: unknown }>(file).model : undefined;
  const fromFile = typeof model === "string" && model ? model : undefined;
  return {
    endpoint,
    model: fromFile
      ? { value: fromFile, source: copilotHome ? `${file}` : "~/.copilot/settings.json" }
      : { value: "(Copilot CLI's default)", source: "default" },
  };
}

interface CopilotLine {
  type?: string;
  ephemeral?: boolean;
  sessionId?: string;
  data?: {
    content?: string;
    toolRequests?: Array<{ toolCallId?: string; name?: string; arguments?: unknown }>;
    toolCallId?: string;
    success?: boolean;
    result?: { content?: string };
    error?: { message?: string } | string;
    reason?: string;
    errorType?: string;
    statusCode?: number;
    message?: string;
    outcome?: string;
    retryAttempt?: number;
  };
}

interface UsageFile {
  modelMetrics?: Record<string, { usage?: { inputTokens?: number; outputTokens?: number } }>;
}

/** Reads the JSONL events, then the CLI's usage file; `cap` counts failed model calls against the cap. */
export function copilotParser(usageFile: string, cap?: RetryCap): CliStreamParser {
  return {
    overRetryCap: () => cap?.exceeded,
    line(raw) {
      const line = jsonObject<CopilotLine>(raw);
      if (!line) return [];
      const data = line.data ?? {};
      switch (line.type) {
        case "assistant.message": {
          const outputs: AgentOutput[] = [];
          if (data.content) outputs.push({ type: "message", role: "assistant", text: data.content });
          for (const request of data.toolRequests ?? []) {
            outputs.push({
              type: "tool_call",
              callId: request.toolCallId ?? "",
              tool: request.name ?? "",
              input: request.arguments ?? {},
            });
          }
          return outputs;
        }
        case "tool.execution_complete": {
          const failed = data.success === false;
          const error = typeof data.error === "string" ? data.error : data.error?.message;
          return [
            {
              type: "tool_result",
              callId: data.toolCallId ?? "",
              output: (failed ? error : undefined) ?? data.result?.content ?? "",
              ...(failed ? { isError: true } : {}),
            },
          ];
        }
        case "model.call_failure": {
          const failure = retriedFailure(data.statusCode);
          if (failure) {
            const status = data.statusCode ? `HTTP ${data.statusCode}` : "no answer";
            cap?.attemptFailed(failure, `the model API failed with ${status}`);
          }
          return [];
        }
        case "model.call_finished":
          if (data.outcome !== "error") cap?.callSucceeded();
          return [];
        case "assistant.turn_retry":
          return [
            { type: "message", role: "system", text: `model API retry after ${data.reason ?? "an error"}` },
          ];
        case "session.error": {
          const message = data.message ?? "Copilot failed";
          return [
            { type: "failure", error: agentError(failureCode(data.errorType, data.statusCode), message) },
          ];
        }
        case "result":
          return line.sessionId ? [{ type: "session", sessionId: line.sessionId }] : [];
        default:
          return [];
      }
    },
    async end() {
      return { outputs: await usageFrom(usageFile) };
    },
  };
}

async function usageFrom(path: string): Promise<AgentOutput[]> {
  let file: UsageFile;
  try {
    file = JSON.parse(await readFile(path, "utf8")) as UsageFile;
  } catch {
    // Killed before its end, it wrote none: its tokens are unknown.
    return [];
  }
  // Cache reads and writes are reported beside inputTokens; their overlap with it differs by
  // provider, so only inputTokens and outputTokens are counted.
  return Object.entries(file.modelMetrics ?? {})
    .map(
      ([model, metrics]): AgentUsage => ({
        model,
        inputTokens: metrics.usage?.inputTokens ?? 0,
        outputTokens: metrics.usage?.outputTokens ?? 0,
      }),
    )
    .filter((usage) => usage.inputTokens + usage.outputTokens > 0)
    .map((usage) => ({ type: "usage", ...usage }));
}

/** The failures Copilot CLI retries, by what they mean; others end it by itself. */
function retriedFailure(status: number | undefined): RetriedFailure | undefined {
  if (status === 429) return "AGENT_RATE_LIMIT";
  if (status === 401 || status === 403) return "AGENT_AUTH";
  if (status === undefined || status >= 500) return "AGENT_UNAVAILABLE";
  return undefined;
}

function failureCode(errorType: string | undefined, status: number | undefined): AgentErrorCode {
  if (errorType === "authentication" || status === 401 || status === 403) return "AGENT_AUTH";
  if (errorType === "rate_limit" || status === 429) return "AGENT_RATE_LIMIT";
  return "AGENT_CRASHED";
}

/** The task's MCP servers as an `--additional-mcp-config @FILE` of the turn's scratch folder; none without servers. */
function copilotMcpArgs(invocation: AgentInvocation): string[] {
  const servers = invocation.mcpServers ?? {};
  if (Object.keys(servers).length === 0) return [];
  const path = join(invocation.scratchDir, "copilot-mcp-config.json");
  writePrivateJson(path, copilotMcpConfig(servers));
  return ["--additional-mcp-config", `@${path}`];
}
