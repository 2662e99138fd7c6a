import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { McpServers } from "../core/jobs/agent-tools.js";
import { firstSetting } from "./agent-setting.js";
import { agentError, cliTurn, jsonObject, readJsonObject, writePrivateJson } from "./cli-agent.js";
import { geminiMcpServers } from "./mcp-config.js";
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
 * Gemini CLI (`@google/gemini-cli`) in headless mode with its stream-json output.
 *
 * Facts of 0.61.0 on Node 20 (recorded in test/fixtures/agents/gemini/ against a loopback
 * Gemini API at GOOGLE_GEMINI_BASE_URL):
 * - lines: `init` (session_id, model), `message` (role user, then assistant text in `delta`
 *   pieces), `tool_use` (tool_name, tool_id, parameters), `tool_result` (tool_id, status,
 *   output, error), `error` (severity, message), `result` (status, error, stats with tokens per
 *   model; no cost);
 * - it needs settings `security.auth.selectedType: gemini-api-key` ("Invalid auth method
 *   selected" without), read from `$GEMINI_CLI_HOME/.gemini/settings.json`; a system settings
 *   file under /tmp is refused as insecure;
 * - an API error ends the process with the HTTP status mod 256 (401 → 145, 429 → 173), a fatal
 *   auth error with 41, the turn limit with 53; it retries 429 ten times with backoff (3.5 min),
 *   printing each attempt to stderr only, and has no request timeout (the stall watch applies);
 * - sessions live under `$GEMINI_CLI_HOME/.gemini/tmp/<project>/chats`; `--resume ID` takes the
 *   session id of `init`.
 */
export const geminiAgent: AgentAdapter = {
  name: "gemini",
  package: { name: "@google/gemini-cli", version: "0.61.0", bin: "gemini" },
  credentialEnv: ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
  setup: geminiSetup,
  run: cliTurn("gemini", (invocation, bin, retries, runner) => {
    const home = geminiHome(invocation, runner, retries);
    const system = systemMcpSettings(invocation, runner);
    const argv = [
      bin,
      // `--prompt=` keeps a prompt that starts with a dash a prompt.
      `--prompt=${invocation.prompt}`,
      "--output-format",
      "stream-json",
      "--yolo",
      "--skip-trust",
      ...(invocation.model ? ["--model", invocation.model] : []),
      ...(invocation.sessionId ? ["--resume", invocation.sessionId] : []),
      ...invocation.extraArgs,
    ];
    return { argv, env: { GEMINI_CLI_HOME: home, ...invocation.env, ...system }, parser: geminiParser() };
  }),
};

/**
 * Gemini CLI's home: the caller's GEMINI_CLI_HOME, else the runner's agent state folder (a follow-up
 * finds its session there), else scratch. Its settings.json is written anew each turn: the user's
 * `~/.gemini/settings.json` (the run's HOME, else the runner's) under runyard's (geminiSettings).
 */
function geminiHome(invocation: AgentInvocation, runner: RunnerEnv, retries: number): string {
  const own = invocation.env.GEMINI_CLI_HOME || runner.GEMINI_CLI_HOME;
  if (own) return own;
  const home = invocation.env.RUNYARD_AGENT_STATE_DIR
    ? join(invocation.env.RUNYARD_AGENT_STATE_DIR, "gemini")
    : invocation.scratchDir;
  const userHome = invocation.env.HOME || runner.HOME;
  const users = userHome ? readJsonObject(join(userHome, ".gemini", "settings.json")) : {};
  mkdirSync(join(home, ".gemini"), { recursive: true, mode: 0o700 });
  writePrivateJson(
    join(home, ".gemini", "settings.json"),
    geminiSettings(users, retries, invocation.mcpServers ?? {}),
  );
  return home;
}

type Json = Record<string, unknown>;

/**
 * Runyard writes no settings.json into a caller's own GEMINI_CLI_HOME: the task's MCP servers go in a
 * system settings file in scratch (GEMINI_CLI_SYSTEM_SETTINGS_PATH), which the CLI lays over the user's.
 */
function systemMcpSettings(invocation: AgentInvocation, runner: RunnerEnv): Record<string, string> {
  const servers = invocation.mcpServers ?? {};
  const own = invocation.env.GEMINI_CLI_HOME || runner.GEMINI_CLI_HOME;
  if (!own || Object.keys(servers).length === 0) return {};
  const path = join(invocation.scratchDir, "gemini-system-settings.json");
  writePrivateJson(path, { mcpServers: geminiMcpServers(servers) });
  return { GEMINI_CLI_SYSTEM_SETTINGS_PATH: path };
}

/**
 * Gemini CLI's endpoint and model, first found wins: `GOOGLE_GEMINI_BASE_URL` of the run's env, the
 * runner's, Google's; the run's model, `model.name` of `~/.gemini/settings.json`, the CLI's default.
 */
export function geminiSetup(context: SetupContext): AgentSetup {
  const { run, runner } = context;
  const home = run.HOME || runner.HOME;
  const settings = home ? readJsonObject(join(home, ".gemini", "settings.json")) : {};
  const model = settings.model as { name?: unknown } | undefined;
  const fromFile = typeof model?.name === "string" ? model.name : undefined;
  return {
    endpoint: firstSetting(context, {
      env: "GOOGLE_GEMINI_BASE_URL",
      fallback: "https://generativelanguage.googleapis.com",
    }),
    model: firstSetting(context, {
      model: true,
      file: fromFile,
      shown: "~/.gemini/settings.json",
      fallback: "(Gemini CLI's default)",
    }),
  };
}

/**
 * The user's settings under runyard's: API-key login unless the user chose another, no usage
 * statistics (a run talks to its model only), at most `retries` retries of a model call
 * (`general.maxAttempts` counts the first attempt too; the CLI allows at most 10).
 */
export function geminiSettings(users: Json, retries: number, mcp: McpServers = {}): Json {
  const section = (name: string): Json => {
    const value = users[name];
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : {};
  };
  const security = section("security");
  const auth = security.auth !== null && typeof security.auth === "object" ? (security.auth as Json) : {};
  return {
    ...users,
    security: { ...security, auth: { selectedType: "gemini-api-key", ...auth } },
    privacy: { ...section("privacy"), usageStatisticsEnabled: false },
    general: { ...section("general"), maxAttempts: Math.min(10, retries + 1) },
    // The task's servers beside the user's, the task's winning a name both use.
    ...(Object.keys(mcp).length > 0
      ? { mcpServers: { ...section("mcpServers"), ...geminiMcpServers(mcp) } }
      : {}),
  };
}

interface GeminiLine {
  type?: string;
  session_id?: string;
  model?: string;
  role?: string;
  content?: string;
  delta?: boolean;
  tool_name?: string;
  tool_id?: string;
  parameters?: unknown;
  status?: string;
  output?: string;
  severity?: string;
  message?: string;
  error?: { type?: string; message?: string };
  stats?: { models?: Record<string, { input_tokens?: number; output_tokens?: number }> };
}

/** Reads stream-json: text pieces join into one message ended by the next line; usage once, from `result`. */
export function geminiParser(): CliStreamParser {
  let text = "";
  let resultSeen = false;
  const flush = (): AgentOutput[] => {
    if (!text) return [];
    const message: AgentOutput = { type: "message", role: "assistant", text };
    text = "";
    return [message];
  };

  const read = (line: GeminiLine): AgentOutput[] => {
    switch (line.type) {
      case "init":
        return line.session_id ? [{ type: "session", sessionId: line.session_id }] : [];
      case "tool_use":
        return [
          {
            type: "tool_call",
            callId: line.tool_id ?? "",
            tool: line.tool_name ?? "",
            input: line.parameters ?? {},
          },
        ];
      case "tool_result": {
        const failed = line.status === "error";
        return [
          {
            type: "tool_result",
            callId: line.tool_id ?? "",
            output: (failed ? line.error?.message : undefined) ?? line.output ?? "",
            ...(failed ? { isError: true } : {}),
          },
        ];
      }
      case "error":
        return line.message ? [{ type: "message", role: "system", text: line.message }] : [];
      case "result": {
        resultSeen = true;
        const outputs: AgentOutput[] = Object.entries(line.stats?.models ?? {})
          .filter(([, usage]) => (usage.input_tokens ?? 0) + (usage.output_tokens ?? 0) > 0)
          .map(([model, usage]) => ({
            type: "usage",
            model,
            inputTokens: usage.input_tokens ?? 0,
            outputTokens: usage.output_tokens ?? 0,
          }));
        if (line.status === "error") {
          const message = line.error?.message ?? "Gemini CLI failed";
          outputs.push({
            type: "failure",
            error: agentError(failureCode(line.error?.type, message), message),
          });
        }
        return outputs;
      }
      default:
        return [];
    }
  };

  return {
    line(raw) {
      const line = jsonObject<GeminiLine>(raw);
      if (!line) return [];
      if (line.type === "message") {
        if (line.role === "assistant" && line.content) text += line.content;
        return [];
      }
      return [...flush(), ...read(line)];
    },
    stderr(chunk) {
      // Retries show only on stderr: "Attempt 2 failed with status 429. Retrying with backoff..."
      return [...chunk.matchAll(/Attempt (\d+) failed(?: with status (\d+))?\. Retrying with backoff/g)].map(
        (match) => ({
          type: "message",
          role: "system",
          text: `model API retry after attempt ${match[1]}${match[2] ? ` (HTTP ${match[2]})` : ""}`,
        }),
      );
    },
    async end({ exitCode, stderrTail }) {
      const outputs = flush();
      if (resultSeen || exitCode === 0) return { outputs };
      const how = exitCode === null ? "it was killed" : `exit code ${exitCode}`;
      const code = exitCode === null ? "AGENT_CRASHED" : (exitCodes[exitCode] ?? "AGENT_CRASHED");
      return {
        outputs,
        error: agentError(
          code,
          `Gemini CLI ended without a result (${how})${stderrTail ? `: ${lastLine(stderrTail)}` : ""}`,
        ),
      };
    },
  };
}

/** Exit codes that say what failed: its fatal errors' own, and HTTP statuses mod 256. */
const exitCodes: Record<number, AgentErrorCode> = {
  41: "AGENT_AUTH",
  53: "AGENT_TURN_LIMIT",
  145: "AGENT_AUTH",
  147: "AGENT_AUTH",
  173: "AGENT_RATE_LIMIT",
};

function failureCode(type: string | undefined, message: string): AgentErrorCode {
  if (type === "FatalAuthenticationError") return "AGENT_AUTH";
  if (type === "FatalTurnLimitedError") return "AGENT_TURN_LIMIT";
  // API errors arrive as `[API Error: {"error":{"code":401,...,"status":"UNAUTHENTICATED"}}]`.
  if (/"code":\s*40[13]\b|UNAUTHENTICATED|PERMISSION_DENIED|API key not valid/.test(message))
    return "AGENT_AUTH";
  // After its retries a 429 reads "[API Error: Resource has been exhausted (e.g. check quota).]".
  if (/"code":\s*429\b|RESOURCE_EXHAUSTED|Resource has been exhausted/.test(message))
    return "AGENT_RATE_LIMIT";
  return "AGENT_CRASHED";
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}
