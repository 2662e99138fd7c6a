import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { McpServers } from "../core/jobs/agent-tools.js";
import { agentError, cliTurn, jsonObject, LineSplitter, readJsonObject } from "./cli-agent.js";
import { opencodeMcp } from "./mcp-config.js";
import { costFor } from "./prices.js";
import { type RetriedFailure, RetryCap } from "./retry-cap.js";
import type {
  AgentAdapter,
  AgentErrorCode,
  AgentOutput,
  AgentSetting,
  AgentSetup,
  CliStreamParser,
  SetupContext,
} from "./types.js";

/**
 * OpenCode (`opencode-ai`) in `opencode run --format json` mode.
 *
 * Facts of 1.18.33 (node 20; recorded in test/fixtures/agents/opencode/):
 * - a provider comes from `OPENCODE_CONFIG_CONTENT`; `@ai-sdk/openai-compatible` is built in;
 *   `--pure` skips external plugins, yet a start still asks the npm registry for the metadata of
 *   `@opencode-ai/plugin`, `web-tree-sitter` and `@opentui/core` (into `~/.npm`), and installs
 *   `@opencode-ai/plugin` (64 MB with what it needs) in the background into each config folder it
 *   may write that has no `node_modules`: a turn shorter than the install cuts it off, and the
 *   next start begins again. A config folder it may not write it leaves alone (the runner's copy
 *   for a sandboxed turn is read-only: runner/conversation-config.ts);
 *   `OPENCODE_DISABLE_MODELS_FETCH=1` skips the models.dev list. Offline so, a turn starts in ~4 s;
 * - its project folder is `$PWD`, not its working directory: a stale PWD inherited from the runner
 *   would put the session (and relative paths) elsewhere;
 * - before a new session's first answer it asks the model for a title (no tools, tokens in no event);
 * - events: `step_start`, `text` (a whole text part), `tool_use` (one per call, when it ended:
 *   `state` has input, output or error), `step_finish` (that model call's tokens and a cost, 0 for
 *   a model it has no price for), `error` (`APIError` with `statusCode`);
 * - it retries 429, 5xx and network errors itself (5 retries, a constant with no setting;
 *   honouring retry-after, else 2 s doubling), never 401, and prints nothing of it on stdout.
 *   With `--print-logs --log-level ERROR` each failed attempt is a stderr line
 *   `level=ERROR ... message="stream error" ... small=false ... error.error="<message>"`
 *   (`small=true` is its title request, which the AI SDK retries twice by itself): the adapter
 *   counts these against the run's `llm_retry_count`;
 * - its own config is `$XDG_CONFIG_HOME/opencode/opencode.json` (`provider`, `model`), with
 *   `OPENCODE_CONFIG_CONTENT` merged over it.
 */
export const opencodeAgent: AgentAdapter = {
  name: "opencode",
  package: { name: "opencode-ai", version: "1.18.33", bin: "opencode" },
  credentialEnv: ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENCODE_API_KEY"],
  setup: opencodeSetup,
  run: cliTurn("opencode", async (invocation, bin, retries, runner) => {
    const env = invocation.env;
    // Sessions live in its data folder: a follow-up needs the runner's state folder, not scratch.
    const root = join(env.RUNYARD_AGENT_STATE_DIR || invocation.scratchDir, "opencode");
    // Its config folder stays the user's (their providers and model); runyard's provider goes on top
    // through OPENCODE_CONFIG_CONTENT. Only without any HOME does it get a private one.
    const configHome =
      env.XDG_CONFIG_HOME ||
      runner.XDG_CONFIG_HOME ||
      (env.HOME || runner.HOME ? join(env.HOME || runner.HOME || "", ".config") : join(root, "config"));
    const xdg = {
      XDG_CONFIG_HOME: configHome,
      XDG_DATA_HOME: join(root, "data"),
      XDG_CACHE_HOME: join(root, "cache"),
      XDG_STATE_HOME: join(root, "state"),
    };
    // It writes a 5.5 MB shared library (its file finder) into $TMPDIR at every start and never
    // removes it: in scratch it goes with the turn. A run that sets TMPDIR itself keeps its own.
    const tmp = join(invocation.scratchDir, "tmp");
    const own = [xdg.XDG_DATA_HOME, xdg.XDG_CACHE_HOME, xdg.XDG_STATE_HOME, tmp];
    if (xdg.XDG_CONFIG_HOME.startsWith(root)) own.push(xdg.XDG_CONFIG_HOME);
    await Promise.all(own.map((dir) => mkdir(dir, { recursive: true, mode: 0o700 })));
    const provided = providerConfig(env, invocation.model);
    const model = provided.model;
    const config = withMcp(provided.config ?? env.OPENCODE_CONFIG_CONTENT, invocation.mcpServers ?? {});
    const argv = [
      bin,
      "run",
      "--format",
      "json",
      "--pure",
      "--auto",
      // Its failed model calls, on stderr, for the retry cap (see above).
      "--print-logs",
      "--log-level",
      "ERROR",
      "--dir",
      invocation.cwd,
      ...(model ? ["-m", model] : []),
      ...(invocation.sessionId ? ["--session", invocation.sessionId] : []),
      ...invocation.extraArgs,
      "--",
      invocation.prompt,
    ];
    return {
      argv,
      env: {
        OPENCODE_DISABLE_MODELS_FETCH: "1",
        OPENCODE_DISABLE_AUTOUPDATE: "1",
        TMPDIR: tmp,
        ...xdg,
        ...env,
        ...(config ? { OPENCODE_CONFIG_CONTENT: config } : {}),
        PWD: invocation.cwd,
      },
      parser: opencodeParser(model, new RetryCap(retries)),
    };
  }),
};

const DEFAULT_MODEL = "gpt-4o-mini";

/**
 * OpenCode's endpoint and model: with `OPENAI_BASE_URL` in the run's env, runyard's provider for it;
 * else the `model` (`provider/model`) of the user's opencode.json and that provider's `baseURL`;
 * else OpenCode's own defaults.
 */
export function opencodeSetup(context: SetupContext): AgentSetup {
  const { run, runner } = context;
  if (run.OPENAI_BASE_URL) {
    return {
      endpoint: { value: run.OPENAI_BASE_URL, source: "run env" },
      model: {
        value: context.model ?? `runyard/${DEFAULT_MODEL}`,
        source: context.model ? "run" : "default",
      },
    };
  }
  const home = run.HOME || runner.HOME;
  const configHome =
    run.XDG_CONFIG_HOME || runner.XDG_CONFIG_HOME || (home ? join(home, ".config") : undefined);
  const shown =
    run.XDG_CONFIG_HOME || runner.XDG_CONFIG_HOME
      ? `${configHome}/opencode/opencode.json`
      : "~/.config/opencode/opencode.json";
  const config = configHome
    ? readJsonObject<OpencodeConfig>(join(configHome, "opencode", "opencode.json"))
    : {};
  const fromFile = typeof config.model === "string" ? config.model : undefined;
  const model: AgentSetting = context.model
    ? { value: context.model, source: "run" }
    : fromFile
      ? { value: fromFile, source: shown }
      : { value: "(OpenCode's default)", source: "default" };
  const provider = model.value.includes("/") ? model.value.split("/")[0] : undefined;
  const options = provider ? config.provider?.[provider]?.options : undefined;
  const endpoint: AgentSetting =
    typeof options?.baseURL === "string"
      ? { value: options.baseURL, source: shown }
      : { value: "(the provider's default)", source: "default" };
  return { endpoint, model };
}

interface OpencodeConfig {
  model?: unknown;
  provider?: Record<string, { options?: { baseURL?: unknown } } | undefined>;
}

/**
 * With `OPENAI_BASE_URL`, a provider `runyard` for that server (OpenCode reads its key from
 * `OPENAI_API_KEY`, so no config holds it) over the run's `OPENCODE_CONFIG_CONTENT`. Without it,
 * OpenCode's own providers and the model as given (`provider/model`).
 */
export function providerConfig(
  env: Readonly<Record<string, string>>,
  model: string | undefined,
): { config?: string; model?: string } {
  if (!env.OPENAI_BASE_URL) return model ? { model } : {};
  const name = (model ?? DEFAULT_MODEL).replace(/^runyard\//, "");
  // Not a JSON object: OpenCode would refuse it too; ours replaces it.
  const base = jsonObject(env.OPENCODE_CONFIG_CONTENT ?? "") ?? {};
  const providers = (base.provider ?? {}) as Record<string, unknown>;
  const config = {
    ...base,
    autoupdate: false,
    share: "disabled",
    provider: {
      ...providers,
      runyard: {
        npm: "@ai-sdk/openai-compatible",
        name: "runyard",
        options: { baseURL: env.OPENAI_BASE_URL, apiKey: "{env:OPENAI_API_KEY}" },
        models: { [name]: { name } },
      },
    },
  };
  return { config: JSON.stringify(config), model: `runyard/${name}` };
}

interface ToolState {
  status?: string;
  input?: unknown;
  output?: string;
  error?: string;
}

interface OpencodeEvent {
  type?: string;
  sessionID?: string;
  part?: {
    text?: string;
    tool?: string;
    callID?: string;
    state?: ToolState;
    tokens?: {
      input?: number;
      output?: number;
      reasoning?: number;
      cache?: { read?: number; write?: number };
    };
    cost?: number;
  };
  error?: { name?: string; data?: { message?: string; statusCode?: number } };
}

/** Reads `opencode run --format json`; `model` prices usage given no cost; `cap` counts stderr's retries. */
export function opencodeParser(model?: string, cap?: RetryCap): CliStreamParser {
  let session: string | undefined;
  let failed = false;
  const logLines = new LineSplitter((line) => {
    const attempt = failedAttempt(line);
    if (attempt) cap?.attemptFailed(attempt.code, attempt.message);
  });
  return {
    overRetryCap: () => cap?.exceeded,
    stderr(chunk) {
      logLines.push(chunk);
      return [];
    },
    line(text) {
      const event = jsonObject<OpencodeEvent>(text);
      if (!event) return [];
      const outputs: AgentOutput[] = [];
      if (event.sessionID && event.sessionID !== session) {
        session = event.sessionID;
        outputs.push({ type: "session", sessionId: session });
      }
      const part = event.part ?? {};
      switch (event.type) {
        case "text":
          if (part.text) outputs.push({ type: "message", role: "assistant", text: part.text });
          break;
        case "tool_use": {
          const callId = part.callID ?? "";
          const state = part.state ?? {};
          outputs.push({ type: "tool_call", callId, tool: part.tool ?? "", input: state.input ?? {} });
          if (state.status === "error") {
            outputs.push({ type: "tool_result", callId, output: state.error ?? "", isError: true });
          } else if (state.status === "completed") {
            outputs.push({ type: "tool_result", callId, output: state.output ?? "" });
          }
          break;
        }
        case "step_finish": {
          cap?.callSucceeded();
          const tokens = part.tokens ?? {};
          // Its `input` leaves out cached prompt tokens, its `output` the reasoning: put both back.
          const inputTokens = (tokens.input ?? 0) + (tokens.cache?.read ?? 0) + (tokens.cache?.write ?? 0);
          const outputTokens = (tokens.output ?? 0) + (tokens.reasoning ?? 0);
          // 0 means it has no price for the model, not that the call was free.
          const costUsd = part.cost
            ? part.cost
            : model
              ? costFor(model, inputTokens, outputTokens)
              : undefined;
          outputs.push({
            type: "usage",
            ...(model ? { model } : {}),
            inputTokens,
            outputTokens,
            ...(costUsd !== undefined ? { costUsd } : {}),
          });
          break;
        }
        case "error": {
          const message = event.error?.data?.message ?? event.error?.name ?? "opencode reported an error";
          failed = true;
          outputs.push({
            type: "failure",
            error: agentError(codeOf(event.error?.name, event.error?.data?.statusCode, message), message),
          });
          break;
        }
      }
      return outputs;
    },
    async end({ exitCode, stderrTail }) {
      if (exitCode === 0 || failed) return { outputs: [] };
      const message = stderrTail || `opencode exited with ${exitCode ?? "a signal"}`;
      return { outputs: [], error: agentError("AGENT_CRASHED", message) };
    },
  };
}

/** OpenCode's log line of a failed attempt of the session's own model call (not its title's). */
const STREAM_ERROR =
  /\blevel=ERROR\b.*\bmessage="stream error".*\bsmall=false\b.*\berror\.error="((?:[^"\\]|\\.)*)"/;

/** A failed call OpenCode retries, by its own rules (429, rate limits, 5xx, overload, network errors). */
export function failedAttempt(line: string): { code: RetriedFailure; message: string } | undefined {
  const found = STREAM_ERROR.exec(line);
  if (!found) return undefined;
  const message = (found[1] ?? "").replace(/\\(.)/g, "$1").replace(/^AI_\w+: /, "");
  if (
    /\b40[13]\b|unauthori[sz]ed|forbidden|(invalid|incorrect|wrong).{0,20}(api.?key|token)|authentication/i.test(
      message,
    )
  ) {
    return { code: "AGENT_AUTH", message };
  }
  if (/\b429\b|rate.?limit|too many requests|resource.?exhausted|quota/i.test(message)) {
    return { code: "AGENT_RATE_LIMIT", message };
  }
  if (
    /\b5\d\d\b|overloaded|unavailable|internal.?(server.?)?error|server.?error|terminated|fetch failed|network|connection|socket|econn|etimedout|timed? ?out|try again/i.test(
      message,
    )
  ) {
    return { code: "AGENT_UNAVAILABLE", message };
  }
  return undefined;
}

function codeOf(name: string | undefined, status: number | undefined, message: string): AgentErrorCode {
  if (name === "ProviderAuthError" || status === 401 || status === 403) return "AGENT_AUTH";
  if (status === 429 || /rate.?limit|too many requests/i.test(message)) return "AGENT_RATE_LIMIT";
  return "AGENT_CRASHED";
}

/** The config content with the task's MCP servers added to its `mcp`, winning a name both use. */
export function withMcp(content: string | undefined, servers: McpServers): string | undefined {
  if (Object.keys(servers).length === 0) return content;
  // Not a JSON object: OpenCode would refuse it too; the servers go alone.
  const base = jsonObject(content ?? "") ?? {};
  const mcp = base.mcp !== null && typeof base.mcp === "object" ? (base.mcp as Record<string, unknown>) : {};
  return JSON.stringify({ ...base, mcp: { ...mcp, ...opencodeMcp(servers) } });
}
