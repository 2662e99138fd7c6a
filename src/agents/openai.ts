/**
 * `openai`: runyard's built-in coding agent, for when no vendor CLI is wanted: a tool loop over any
 * OpenAI-compatible Chat Completions API (tools in openai-tools.ts) until the model answers without a tool
 * call or uses up its turns.
 *
 * Env: `OPENAI_BASE_URL` (default https://api.openai.com/v1), `OPENAI_API_KEY`, `RUNYARD_LLM_RETRY_COUNT`
 * (retries of a model call, default 3; the runner passes `llm_retry_count`); model default gpt-4o-mini.
 * `extraArgs`: `--max-turns N` (model calls per turn, default 50). A session is the conversation as JSON
 * under `RUNYARD_AGENT_STATE_DIR` (the runner's outlives the turn; unset, scratch, lost to a follow-up).
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { withoutCredentials } from "../core/config-env.js";
import type { ErrorInfo } from "../core/events.js";
import { agentError } from "./cli-agent.js";
import { ChatApiError, type ChatMessage, chatWithRetries, defaultRetryPolicy } from "./openai-chat.js";
import { runTool, toolDefinitions } from "./openai-tools.js";
import { costFor } from "./prices.js";
import { llmRetryCount } from "./retry-count.js";
import type { AgentAdapter, AgentInvocation, AgentIo, AgentTurnEnd } from "./types.js";

const DEFAULT_BASE_URL = "https://api.openai.com/v1";
const DEFAULT_MODEL = "gpt-4o-mini";
const DEFAULT_MAX_TURNS = 50;

const SYSTEM_PROMPT = [
  "You are a coding agent working in a git repository: the workspace folder.",
  "Use the tools to look at the code, change files and run commands (tests, builds).",
  "Paths are relative to the workspace; you cannot reach files outside it.",
  "Make the change the user asks for, check it, then answer with a short summary of what you did.",
].join(" ");

/** What a session file holds. */
interface SessionState {
  model: string;
  messages: ChatMessage[];
}

export const openaiAgent: AgentAdapter = {
  name: "openai",
  credentialEnv: ["OPENAI_API_KEY"],
  run: runOpenAiLoop,
};

async function runOpenAiLoop(invocation: AgentInvocation, _bin: string, io: AgentIo): Promise<AgentTurnEnd> {
  const startedAt = performance.now();
  const figures = { memoryPeakBytes: 0, cpuMs: 0 };
  const end = (status: AgentTurnEnd["status"], error?: ErrorInfo): AgentTurnEnd => ({
    status,
    ...(error ? { error } : {}),
    exitCode: status === "success" ? 0 : status === "failed" ? 1 : null,
    durationMs: Math.round(performance.now() - startedAt),
    ...figures,
  });
  const fail = (error: ErrorInfo & { code: Parameters<typeof agentError>[0] }) => {
    io.emit({ type: "failure", error });
    return end("failed", error);
  };

  const maxTurns = parseMaxTurns(invocation.extraArgs);
  if (typeof maxTurns === "string") return fail(agentError("AGENT_CRASHED", maxTurns));
  const env = invocation.env;
  const apiKey = env.OPENAI_API_KEY ?? "";
  const baseUrl = env.OPENAI_BASE_URL || DEFAULT_BASE_URL;
  const stateDir = join(env.RUNYARD_AGENT_STATE_DIR || invocation.scratchDir, "openai-sessions");
  const retries = llmRetryCount(env);
  if (typeof retries === "string") return fail(agentError("AGENT_CRASHED", retries));
  const retryPolicy = { ...defaultRetryPolicy, retries };

  let sessionId = invocation.sessionId;
  let state: SessionState;
  if (sessionId) {
    const loaded = await loadSession(stateDir, sessionId);
    if (typeof loaded === "string") return fail(agentError("AGENT_CRASHED", loaded));
    state = loaded;
    if (invocation.model) state.model = invocation.model;
  } else {
    sessionId = randomUUID();
    state = {
      model: invocation.model ?? DEFAULT_MODEL,
      messages: [{ role: "system", content: SYSTEM_PROMPT }],
    };
  }
  io.emit({ type: "session", sessionId });
  state.messages.push({ role: "user", content: invocation.prompt });
  const save = () => saveSession(stateDir, sessionId, state);

  // Commands see the runner's env and the run's, but not the key the loop itself uses.
  const { OPENAI_API_KEY: _key, ...commandEnv } = { ...withoutCredentials(io.env ?? process.env), ...env };
  const toolContext = {
    workspace: invocation.cwd,
    launcher: io.launcher,
    signal: io.signal,
    env: commandEnv,
    alive: () => io.alive(),
    onCommandEnd: (r: { cpuMs: number; memoryPeakBytes: number }) => {
      figures.cpuMs += r.cpuMs;
      figures.memoryPeakBytes = Math.max(figures.memoryPeakBytes, r.memoryPeakBytes);
    },
  };

  try {
    for (let turn = 0; turn < maxTurns; turn++) {
      const completion = await chatWithRetries(
        {
          baseUrl,
          apiKey,
          // Set by the runner after the task's env, for a member's endpoint of a turn whose egress is held.
          publicOnly: env.RUNYARD_MODEL_PUBLIC_ONLY === "1",
          body: { model: state.model, messages: state.messages, tools: toolDefinitions },
          signal: io.signal,
          alive: () => io.alive(),
        },
        retryPolicy,
      );
      state.messages.push(completion.message);
      await save();
      if (completion.usage) {
        const model = completion.model ?? state.model;
        const { inputTokens, outputTokens } = completion.usage;
        const costUsd = costFor(model, inputTokens, outputTokens);
        io.emit({
          type: "usage",
          model,
          inputTokens,
          outputTokens,
          ...(costUsd !== undefined ? { costUsd } : {}),
        });
      }
      const text = completion.message.content;
      if (text) io.emit({ type: "message", role: "assistant", text });
      const calls = completion.message.tool_calls ?? [];
      if (calls.length === 0) return end("success");
      for (const call of calls) {
        let input: unknown = call.function.arguments;
        try {
          input = JSON.parse(call.function.arguments);
        } catch {
          // the raw text is reported; runTool tells the model it is no JSON
        }
        io.emit({ type: "tool_call", callId: call.id, tool: call.function.name, input });
        const result = await runTool(call.function.name, call.function.arguments, toolContext);
        if (io.signal.aborted) return end("canceled");
        io.emit({
          type: "tool_result",
          callId: call.id,
          output: result.output,
          ...(result.isError ? { isError: true } : {}),
        });
        // The command could not run (a refused folder, its cluster failed): the turn fails, as a CLI's would.
        if (result.fatal) return end("failed", result.fatal);
        state.messages.push({ role: "tool", tool_call_id: call.id, content: result.output });
      }
      await save();
    }
    return fail(
      agentError(
        "AGENT_TURN_LIMIT",
        `the model was still calling tools after ${maxTurns} turns (--max-turns)`,
      ),
    );
  } catch (error) {
    if (io.signal.aborted) return end("canceled");
    if (error instanceof ChatApiError) return fail(apiFailure(error, baseUrl, retries));
    return fail(agentError("AGENT_CRASHED", `the openai agent failed: ${(error as Error).message ?? error}`));
  }
}

function apiFailure(error: ChatApiError, baseUrl: string, retries: number) {
  if (error.status === 401 || error.status === 403) {
    return agentError("AGENT_AUTH", `${baseUrl} refused the API key: ${error.message}`);
  }
  if (error.status === 429) {
    return agentError("AGENT_RATE_LIMIT", `still rate-limited after ${retries} retries: ${error.message}`);
  }
  return agentError("AGENT_CRASHED", `the model API failed: ${error.message}`);
}

function parseMaxTurns(extraArgs: readonly string[]): number | string {
  let maxTurns = DEFAULT_MAX_TURNS;
  for (let i = 0; i < extraArgs.length; i++) {
    const arg = extraArgs[i]!;
    const value = arg.startsWith("--max-turns=")
      ? arg.slice(12)
      : arg === "--max-turns"
        ? extraArgs[++i]
        : null;
    if (value === null) return `the openai agent takes only --max-turns N as extra arguments, not ${arg}`;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) return `--max-turns needs a whole number above 0, not ${value}`;
    maxTurns = n;
  }
  return maxTurns;
}

/** Session ids are runyard's own UUIDs; anything else could name a path. */
const SESSION_ID = /^[0-9a-f-]{36}$/;

async function loadSession(dir: string, sessionId: string): Promise<SessionState | string> {
  if (!SESSION_ID.test(sessionId)) return `not a session id of the openai agent: ${sessionId}`;
  try {
    return JSON.parse(await readFile(join(dir, `${sessionId}.json`), "utf8")) as SessionState;
  } catch (error) {
    return `cannot load session ${sessionId} from ${dir}: ${(error as Error).message}`;
  }
}

/** Written whole and renamed, so a turn stopped mid-write leaves the previous state. */
async function saveSession(dir: string, sessionId: string, state: SessionState): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${sessionId}.json`);
  await writeFile(`${path}.tmp`, JSON.stringify(state), { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}
