import { LineSplitter } from "../agents/cli-agent.js";
import type { AgentAdapter } from "../agents/types.js";
import { withoutCredentials } from "../core/config-env.js";
import { agentTaskConfinement } from "../core/confinement.js";
import { RunyardError } from "../core/errors.js";
import type { AgentSandbox, AgentTask } from "../core/jobs/agent.js";
import { isStdioServer } from "../core/jobs/agent-tools.js";
import type { EgressDestination } from "../exec/egress-proxy.js";
import type { ProcessLauncher } from "../exec/types.js";
import { type TurnOutcome, turnFailed } from "./handlers/agent.js";

/**
 * What runs in an agent turn's sandbox besides the agent CLI: the task's setup command before the
 * first turn, and the check that each MCP server the CLI will start can be found there.
 */

/** A turn made ready to run (see `SupervisedAgentTurns.open`). */
export interface OpenTurn {
  adapter: AgentAdapter;
  path: string;
  state: string;
  scratchDir: string;
  env: Record<string, string | undefined>;
  container: AgentSandbox | undefined;
  /** Runs a command as the turn's processes run: its sandbox and its exposure. */
  launcher: ProcessLauncher;
  codexHome?: string;
  configHome?: string;
  close(): Promise<void>;
}

/** How long the MCP command check may take: a shell's `command -v`, in a sandbox that may be a container. */
const checkTimeoutMs = 60_000;
const killGraceMs = 5_000;
/** How much of a failed setup's output its error quotes (the step's output events hold it all). */
const setupTailChars = 4_000;

/** The environment a command of the turn starts from, as the CLI's: the runner's without runyard's own credentials, the task's on top. */
function commandEnv(turn: OpenTurn, task: AgentTask, cwd: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries({
    ...withoutCredentials(turn.env),
    PWD: cwd,
    ...task.env,
  })) {
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * The turn's outcome when a stdio MCP server's command cannot be found inside the turn's
 * sandbox (its PATH, its mounts), checked there with the shell's `command -v` before the agent
 * starts: the CLI itself would start without the server and the model would never see its
 * tools. Undefined when every command is found.
 */
export async function mcpCommandsUnreachable(
  task: AgentTask,
  cwd: string,
  turn: OpenTurn,
  signal: AbortSignal,
): Promise<TurnOutcome | undefined> {
  const stdio = Object.entries(task.mcp_servers).flatMap(([name, server]) =>
    isStdioServer(server) ? [{ name, command: server.command }] : [],
  );
  if (stdio.length === 0) return undefined;
  let stdout = "";
  const result = await turn.launcher.run({
    argv: [
      "sh",
      "-c",
      'for c in "$@"; do command -v -- "$c" >/dev/null 2>&1 || printf "%s\\n" "$c"; done',
      "sh",
      ...stdio.map((server) => server.command),
    ],
    env: commandEnv(turn, task, cwd),
    cwd,
    signal,
    timeoutMs: checkTimeoutMs,
    killGraceMs,
    onOutput: (stream, data) => {
      if (stream === "stdout" && stdout.length < 64 * 1024) stdout += data;
    },
  });
  const missing = new Set(stdout.split("\n").filter((line) => line !== ""));
  const unfound = result.status === "success" ? stdio.filter((server) => missing.has(server.command)) : stdio;
  if (unfound.length === 0) return undefined;
  const where = turn.container
    ? `inside the agent's container (image ${turn.container.image})`
    : "inside the agent's sandbox on this runner";
  const what = unfound.map((server) => `${server.name} (${JSON.stringify(server.command)})`).join(", ");
  return turnFailed({
    code: "AGENT_MCP_UNAVAILABLE",
    message:
      result.status === "success"
        ? `the command of MCP server ${what} is not found ${where}`
        : `the commands of the MCP servers could not be checked ${where}: the check ${result.status}${result.spawnError ? ` (${result.spawnError})` : ""}`,
    hint: "A stdio MCP server is started by the agent inside its sandbox: name a program found in the PATH there (or its absolute path), such as one in the repository (./tools/server.js) or installed in the sandbox's image, or one the task's setup command installs.",
  });
}

/**
 * Runs the setup command with `sh -c` in `cwd` through the turn's launcher, each line of its
 * output to `say`. Throws AGENT_SETUP_FAILED (with the tail of its output) unless it exits 0.
 */
export async function runSetup(
  script: string,
  cwd: string,
  turn: OpenTurn,
  task: AgentTask,
  io: { say(line: string): void; signal: AbortSignal },
): Promise<void> {
  let tail = "";
  const keep = (line: string) => {
    io.say(line);
    tail = `${tail}${line}\n`.slice(-setupTailChars);
  };
  const lines = { stdout: new LineSplitter(keep), stderr: new LineSplitter(keep) };
  const result = await turn.launcher.run({
    argv: ["sh", "-c", script],
    env: commandEnv(turn, task, cwd),
    cwd,
    signal: io.signal,
    timeoutMs: task.timeout_ms,
    killGraceMs,
    onOutput: (stream, data) => lines[stream === "stderr" ? "stderr" : "stdout"].push(data),
  });
  lines.stdout.end();
  lines.stderr.end();
  if (result.status === "success") return;
  if (result.status === "canceled") throw new RunyardError("CANCELED", "the run was canceled during setup");
  const how =
    result.status === "timeout"
      ? `ran past the task's timeout (${task.timeout_ms / 1000} s)`
      : result.spawnError
        ? `could not start: ${result.spawnError}`
        : result.exitCode !== null
          ? `exited with code ${result.exitCode}`
          : `was killed by ${result.signal ?? "a signal"}`;
  throw new RunyardError(
    "AGENT_SETUP_FAILED",
    `the setup command ${how}${tail ? `; its last output:\n${tail.trimEnd()}` : " and printed nothing"}`,
  );
}

/**
 * The hosts of the task's URL MCP servers, which its sandbox's egress proxy lets through for this
 * task only. A member's URL leads to public addresses only, as their model endpoint does; a
 * server of the runner's own config (the operator's) anywhere.
 */
export function mcpDestinations(task: AgentTask): EgressDestination[] {
  const destinations: EgressDestination[] = [];
  for (const [name, server] of Object.entries(task.mcp_servers)) {
    if (isStdioServer(server)) continue;
    const url = new URL(server.url);
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const operators = task.mcp_operator.includes(name) || agentTaskConfinement.read(task) === "unconfined";
    destinations.push({ host, port, ...(operators ? {} : { publicOnly: true }) });
  }
  return destinations;
}
