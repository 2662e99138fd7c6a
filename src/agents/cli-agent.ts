import { readFileSync, writeFileSync } from "node:fs";
import { withoutCredentials } from "../core/config-env.js";
import { errorTable } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import { llmRetryCount } from "./retry-count.js";
import type {
  AgentAdapter,
  AgentErrorCode,
  AgentInvocation,
  AgentIo,
  AgentOutput,
  AgentTurnEnd,
  CliStreamParser,
  RunnerEnv,
} from "./types.js";

/** Between SIGTERM and SIGKILL when a turn is stopped: CLIs save their session on SIGTERM. */
const KILL_GRACE_MS = 3000;
/**
 * The longest stdout line handed to a parser (a tool result can be a whole file); a longer one is
 * dropped, so a line without end cannot grow the runner's memory without bound.
 */
export const MAX_LINE_CHARS = 8 * 1024 * 1024;
/** How much of stderr is kept for the failure message of a crash. */
const STDERR_TAIL_CHARS = 4096;

/** An agent failure with the hint a user can act on. */
export function agentError(
  code: AgentErrorCode,
  message: string,
  hint?: string,
): ErrorInfo & {
  code: AgentErrorCode;
} {
  return { code, message, hint: hint ?? errorTable[code].hint };
}

/** A turn refused before its CLI started (a setting it cannot use). */
function refusedTurn(error: ErrorInfo): AgentTurnEnd {
  return { status: "failed", error, exitCode: null, durationMs: 0, memoryPeakBytes: 0, cpuMs: 0 };
}

/** What an adapter starts for one turn: the CLI's argv, its env and the parser of its output. */
export type CliTurn = Pick<CliAgentArgs, "argv" | "env" | "parser">;

/** A CLI adapter's `run`: a wrong `llm_retry_count` refused before anything starts, then `start`'s turn. */
export function cliTurn(
  agent: string,
  start: (
    invocation: AgentInvocation,
    bin: string,
    retries: number,
    runner: RunnerEnv,
  ) => CliTurn | Promise<CliTurn>,
): AgentAdapter["run"] {
  return async (invocation, bin, io) => {
    const runner = io.env ?? process.env;
    const retries = llmRetryCount(invocation.env, runner);
    if (typeof retries === "string") return refusedTurn(agentError("AGENT_CRASHED", retries));
    const turn = await start(invocation, bin, retries, runner);
    return runCliAgent({ agent, cwd: invocation.cwd, io, ...turn });
  };
}

/** A line or file a CLI wrote, as a JSON object; undefined when it is not one (a warning, a cut line). */
export function jsonObject<T extends object = Record<string, unknown>>(text: string): T | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as T) : undefined;
  } catch {
    return undefined;
  }
}

/** A CLI's own settings file as a JSON object; {} when it is absent, unreadable or not one. */
export function readJsonObject<T extends object = Record<string, unknown>>(path: string): Partial<T> {
  try {
    return jsonObject<T>(readFileSync(path, "utf8")) ?? {};
  } catch {
    return {};
  }
}

/** A file of the turn's own (config, MCP servers) only the runner's user may read. */
export function writePrivateJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}

export interface CliAgentArgs {
  /** argv[0] is the CLI's path. */
  argv: string[];
  /** The invocation's env and adapter's settings, over the runner's env minus runyard's credentials. */
  env: Record<string, string>;
  cwd: string;
  parser: CliStreamParser;
  io: AgentIo;
  /** The agent's name, for the install hint when the CLI is missing. */
  agent?: string;
}

/**
 * Runs one turn of a coding-agent CLI in its own process group (aborting `io.signal` stops the
 * group), its stdout fed line by line to the adapter's parser, its end made an `AgentTurnEnd`.
 */
export async function runCliAgent(args: CliAgentArgs): Promise<AgentTurnEnd> {
  const { parser, io } = args;
  const program = args.argv[0] ?? "";
  const name = program.split("/").at(-1) ?? program;
  let failure: ErrorInfo | undefined;
  let parserProblem: string | undefined;

  const emitAll = (outputs: AgentOutput[]) => {
    for (const output of outputs) {
      if (output.type === "failure" && !failure) failure = output.error;
      io.emit(output);
    }
  };
  // A parser bug fails the turn, not the runner (a throw inside the launcher's stream handlers).
  const guarded = (read: () => AgentOutput[]) => {
    if (parserProblem) return;
    try {
      emitAll(read());
    } catch (error) {
      parserProblem = error instanceof Error ? error.message : String(error);
    }
  };

  // Aborted with the turn, or here once a CLI with no setting of its own passed the retry cap.
  const stop = new AbortController();
  const abortWithTurn = () => stop.abort();
  if (io.signal.aborted) stop.abort();
  else io.signal.addEventListener("abort", abortWithTurn, { once: true });
  let overCap: (ErrorInfo & { code: AgentErrorCode }) | undefined;
  const watchRetryCap = () => {
    if (overCap || !parser.overRetryCap) return;
    overCap = parser.overRetryCap();
    if (!overCap) return;
    emitAll([{ type: "failure", error: overCap }]);
    stop.abort();
  };

  const lines = new LineSplitter((line) => {
    if (line.trim()) guarded(() => parser.line(line));
    watchRetryCap();
  });
  let stderrTail = "";

  const result = await io.launcher.run({
    argv: args.argv,
    // The runner's env without runyard's token and keys (a CLI is code runyard does not control);
    // PWD too, as a CLI may read its project folder from it (OpenCode does).
    env: { ...withoutCredentials(io.env ?? process.env), PWD: args.cwd, ...args.env },
    cwd: args.cwd,
    signal: stop.signal,
    killGraceMs: KILL_GRACE_MS,
    // Raw bytes are no sign of life (a CLI printing only retries is stuck); parsed outputs are.
    onOutput: (stream, data) => {
      if (stream === "stdout") {
        lines.push(data);
        return;
      }
      stderrTail = (stderrTail + data).slice(-STDERR_TAIL_CHARS);
      const { stderr } = parser;
      if (stderr) guarded(() => stderr.call(parser, data));
      watchRetryCap();
    },
  });
  lines.end();
  io.signal.removeEventListener("abort", abortWithTurn);

  const figures = {
    exitCode: result.exitCode,
    durationMs: result.durationMs,
    memoryPeakBytes: result.memoryPeakBytes,
    cpuMs: result.cpuMs,
  };
  if (result.spawnError !== undefined) {
    const missing = result.spawnError.startsWith("cannot start");
    return {
      status: io.signal.aborted ? "canceled" : "failed",
      error: missing
        ? agentError(
            "AGENT_NOT_INSTALLED",
            `${result.spawnError}`,
            `Install it with \`runyard agents install ${args.agent ?? name}\`, or put \`${name}\` on PATH.`,
          )
        : agentError(
            "AGENT_CRASHED",
            result.spawnError,
            "The agent's command was refused before it started; the message says why and what to change.",
          ),
      ...figures,
    };
  }

  let ended: Awaited<ReturnType<CliStreamParser["end"]>> = { outputs: [] };
  try {
    ended = await parser.end({ exitCode: result.exitCode, stderrTail: stderrTail.trim() });
  } catch (error) {
    parserProblem ??= error instanceof Error ? error.message : String(error);
  }
  emitAll(ended.outputs);

  // The platform the CLI ran on ended it (a Kubernetes pod evicted, OOMKilled, never pulled):
  // what the stream said before is kept, the failure is the platform's.
  if (result.fault && !io.signal.aborted) return { status: "failed", error: result.fault, ...figures };

  if (io.signal.aborted || (result.status === "canceled" && !overCap))
    return { status: "canceled", ...figures };
  if (failure) return { status: "failed", error: failure, ...figures };
  if (parserProblem) {
    return {
      status: "failed",
      error: agentError("AGENT_CRASHED", `cannot read the output of ${name}: ${parserProblem}`),
      ...figures,
    };
  }
  if (result.exitCode === 0) return { status: "success", ...figures };
  const how =
    result.exitCode === null ? `killed by ${result.signal ?? "a signal"}` : `exit code ${result.exitCode}`;
  const tail = stderrTail.trim();
  return {
    status: "failed",
    error: ended.error ?? agentError("AGENT_CRASHED", tail ? `${how}: ${tail}` : how),
    ...figures,
  };
}

/**
 * Cuts a stream into lines: a line split across chunks stays whole, a `\r\n` ends a line like
 * `\n`, and a line longer than `MAX_LINE_CHARS` is dropped rather than held.
 */
export class LineSplitter {
  private pending = "";
  private overlong = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxChars = MAX_LINE_CHARS,
  ) {}

  push(data: string): void {
    let start = 0;
    for (;;) {
      const newline = data.indexOf("\n", start);
      if (newline === -1) break;
      this.finish(data.slice(start, newline));
      start = newline + 1;
    }
    if (start < data.length) this.hold(data.slice(start));
  }

  /** The last line, if the stream did not end with a newline. */
  end(): void {
    if (this.pending || this.overlong) this.finish("");
  }

  private hold(piece: string): void {
    if (this.overlong) return;
    if (this.pending.length + piece.length > this.maxChars) {
      this.overlong = true;
      this.pending = "";
      return;
    }
    this.pending += piece;
  }

  private finish(lastPiece: string): void {
    const overlong = this.overlong || this.pending.length + lastPiece.length > this.maxChars;
    const line = overlong ? "" : this.pending + lastPiece;
    this.pending = "";
    this.overlong = false;
    if (overlong) return;
    this.onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  }
}
