import type { ErrorInfo } from "../core/events.js";
import type { McpServers } from "../core/jobs/agent-tools.js";
import type { ProcessLauncher } from "../exec/types.js";

/**
 * The agent adapter contract (docs/agents.md): one file per agent CLI (or the built-in loop), turning it
 * into spine events, usage and typed failures. The task pipeline (runner/handlers/agent.ts) sees only this.
 */

/** Typed failure codes of agent runs (docs/agents.md). */
export type AgentErrorCode =
  | "AGENT_AUTH"
  | "AGENT_RATE_LIMIT"
  | "AGENT_UNAVAILABLE"
  | "AGENT_STALLED"
  | "AGENT_TURN_LIMIT"
  | "AGENT_CRASHED"
  | "AGENT_NOT_INSTALLED"
  | "BUDGET_EXCEEDED"
  | "TIMEOUT"
  | "CANCELED";

/** One turn of an agent: what to do, where, with what. */
export interface AgentInvocation {
  prompt: string;
  /** The workspace: the agent's working directory; its tools stay inside it. */
  cwd: string;
  model?: string;
  /** Passed to the CLI after runyard's own arguments. */
  extraArgs: readonly string[];
  /**
   * This run's credentials and provider settings (ANTHROPIC_API_KEY, OPENAI_BASE_URL, ...), laid over the
   * runner's environment with runyard's own credentials taken out.
   */
  env: Readonly<Record<string, string>>;
  /** Continue this session of the same agent (a follow-up turn). */
  sessionId?: string;
  /** A private folder (0700) for the adapter's files (config, usage file); removed after the turn. */
  scratchDir: string;
  /** MCP servers the CLI is given in its own config format (mcp-config.ts); none when absent. */
  mcpServers?: McpServers;
}

/** Token counts: each `usage` output adds to the run's totals. */
export interface AgentUsage {
  model?: string;
  inputTokens: number;
  outputTokens: number;
  /** As the CLI reported it; else computed from `prices.ts` when the model is known. */
  costUsd?: number;
}

/** What the agent did, as adapters report it; the pipeline turns each into a spine event. */
export type AgentOutput =
  | { type: "message"; role: "assistant" | "user" | "system"; text: string }
  | { type: "tool_call"; callId: string; tool: string; input: unknown }
  | { type: "tool_result"; callId: string; output: string; isError?: boolean }
  | ({ type: "usage" } & AgentUsage)
  /** The CLI's session id, for follow-up turns. */
  | { type: "session"; sessionId: string }
  /** A failure the CLI reported in its stream (auth, rate limit, turn limit ...). */
  | { type: "failure"; error: ErrorInfo & { code: AgentErrorCode } }
  /**
   * The CLI on itself, not the work (a retry, a reconnect): shown as a `notice`, but no sign of life for
   * the stall watch, since a CLI that only retries is stuck.
   */
  | { type: "notice"; level: "info" | "warn"; text: string };

/** The runner's environment as an adapter reads it (`AgentIo.env`, else the process's). */
export type RunnerEnv = Readonly<Record<string, string | undefined>>;

/** Where an adapter's outputs go while it runs. */
export interface AgentIo {
  emit(output: AgentOutput): void;
  /** A sign of life (a streamed token, tool output): resets the stall watch, as non-`notice` outputs do. */
  alive(): void;
  /** Aborted on cancel, timeout, stall or budget; the adapter stops its process tree at once. */
  signal: AbortSignal;
  /** Starts processes in their own group, killed as a whole on abort. */
  launcher: ProcessLauncher;
  /**
   * The runner's environment (PATH, HOME, its agent credentials) a CLI starts from, runyard's own
   * credentials taken out before any process sees it; the process's own when absent (tests).
   */
  env?: RunnerEnv;
}

/** How one turn ended, before the supervisor's own verdict (stall, timeout, budget). */
export interface AgentTurnEnd {
  status: "success" | "failed" | "canceled";
  error?: ErrorInfo;
  exitCode: number | null;
  durationMs: number;
  memoryPeakBytes: number;
  cpuMs: number;
}

/** An agent CLI found on this machine. */
export interface InstalledAgent {
  path: string;
  version: string | null;
}

/** What `runyard agents install` puts into runyard's home. */
export interface AgentPackage {
  /** npm package name and the pinned, known-good version that runs on Node 20. */
  name: string;
  version: string;
  /** The command it installs. */
  bin: string;
}

/** One setting an agent will use, and where it came from. */
export interface AgentSetting {
  value: string;
  /**
   * "run" (the task's own field), "run env", "runner env", a config file (`~/.codex/config.toml`),
   * "default", or "missing" (the CLI needs it set and nothing sets it).
   */
  source: string;
}

/** The endpoint and model an agent will use on this machine, each with its source. */
export interface AgentSetup {
  endpoint: AgentSetting;
  model: AgentSetting;
}

/** What an adapter reads its setup from: the run's env over the runner's, and the run's model. */
export interface SetupContext {
  run: Readonly<Record<string, string>>;
  runner: RunnerEnv;
  model?: string;
}

export interface AgentAdapter {
  /** Its name on the wire and in `runyard agents`: lower-case letters, digits and `_`. */
  readonly name: string;
  /** Absent for the built-in loop, which needs no CLI. */
  readonly package?: AgentPackage;
  /** Env names holding its credentials; any one of them is enough. Never printed. */
  readonly credentialEnv: readonly string[];
  /** What a turn would use, as the adapter decides it (what `runyard agents` shows); absent: the env says. */
  setup?(context: SetupContext): AgentSetup;
  /** Runs one turn with `bin` (the CLI's path; "" for the built-in loop). */
  run(invocation: AgentInvocation, bin: string, io: AgentIo): Promise<AgentTurnEnd>;
}

/** Parses a CLI's stdout lines, then its exit (for cli-agent.ts); no I/O but files it had the CLI write. */
export interface CliStreamParser {
  /** One line of stdout (without its newline). */
  line(line: string): AgentOutput[];
  /** Every stderr chunk, for adapters that find failures only there. */
  stderr?(chunk: string): AgentOutput[];
  /**
   * For a CLI with no setting for the run's `llm_retry_count`: the failure once one model call's attempts
   * pass it (`RetryCap`). Asked after each line and stderr chunk; an answer stops the CLI, failing the turn.
   */
  overRetryCap?(): (ErrorInfo & { code: AgentErrorCode }) | undefined;
  /** After exit: what the CLI left (a usage file) and the failure its exit means; a streamed `failure` wins. */
  end(exit: { exitCode: number | null; stderrTail: string }): Promise<{
    outputs: AgentOutput[];
    error?: ErrorInfo;
  }>;
}
