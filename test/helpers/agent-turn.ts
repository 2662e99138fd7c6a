/**
 * What the agent adapter tests under test/agents/ share: a scripted model server stopped after
 * each test, a fresh git repository per test, and one turn of an adapter (by itself or under the
 * runner's supervisor) with what it emitted and the process groups it started.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { type AgentTurnResult, superviseTurn, type TurnLimits } from "../../src/agents/supervise.js";
import type { AgentAdapter, AgentInvocation, AgentOutput, AgentTurnEnd } from "../../src/agents/types.js";
import { createExecutor } from "../../src/exec/create-executor.js";
import type { ModelServer, RecordedRequest, Script, Turn } from "../model-server/server.js";
import { agentCli } from "./agent-cli.js";
import { until } from "./processes.js";

/** The adapter's pinned CLI, installed once per machine; undefined when it cannot be (see agentCli). */
export function pinnedCli(agent: AgentAdapter): string | undefined {
  const pkg = agent.package!;
  return agentCli(agent.name, pkg.name, pkg.version, pkg.bin);
}

/**
 * The adapter, signing life for its CLI every 500 ms until `until` settles. The supervisor's stall
 * watch runs from the turn's start, and the real CLIs print nothing while they start (past 20 s on
 * a loaded machine): a stall test signs life until the model server has left the stream stalled,
 * so its short stall window times the stalled stream, not the start-up.
 */
export function signingLifeUntil(agent: AgentAdapter, until: Promise<unknown>): AgentAdapter {
  return {
    ...agent,
    run(invocation, cli, io) {
      const signs = setInterval(() => io.alive(), 500);
      void until.then(() => clearInterval(signs));
      return agent.run(invocation, cli, io).finally(() => clearInterval(signs));
    },
  };
}

/** The adapter, signing life until `until` settles when there is one. */
export function agentFor(agent: AgentAdapter, until: Promise<unknown> | undefined): AgentAdapter {
  return until ? signingLifeUntil(agent, until) : agent;
}

export interface AgentTestBed {
  /** The test's scripted model server: a test starts it; it is stopped after the test. */
  server: ModelServer | undefined;
  /** With `repoPrefix`: the test's own folder, removed after it. */
  readonly dir: string;
  /** With `repoPrefix`: a git repository in `dir`, the workspace of the test's turns. */
  readonly repo: string;
  /** One turn under the runner's supervisor, as a runner runs it. */
  supervise(
    agent: AgentAdapter,
    invocation: AgentInvocation,
    bin: string,
    limits: TurnLimits,
  ): Promise<{ result: AgentTurnResult; outputs: AgentOutput[]; groups: number[] }>;
  /** One turn of the adapter by itself: no time, stall or budget watch but the CLI's own. */
  run(
    agent: AgentAdapter,
    invocation: AgentInvocation,
    bin: string,
    io?: { signal?: AbortSignal; alive?: () => void; env?: NodeJS.ProcessEnv },
  ): Promise<{ end: AgentTurnEnd; outputs: AgentOutput[]; groups: number[] }>;
}

/**
 * Call once at the top of a test file (it adds the file's beforeEach and afterEach). Each turn
 * gets a launcher of its own that records the process groups it starts; launchers are closed
 * only after the test, so a test sees what a turn left behind, not what closing cleaned up.
 * `launcher: "spawn"` starts processes with Node's spawn instead of the fork-server.
 */
export function agentTestBed(
  options: { repoPrefix?: string; launcher?: "auto" | "spawn" } = {},
): AgentTestBed {
  const launchers: Array<{ close(): void }> = [];
  let dir: string | undefined;
  const recordingLauncher = () => {
    const groups: number[] = [];
    const launcher = createExecutor({
      baseEnv: {},
      ...(options.launcher ? { launcher: options.launcher } : {}),
      watch: { started: (pgid) => groups.push(pgid), ended: () => {} },
    });
    launchers.push(launcher);
    return { launcher, groups };
  };
  const bed: AgentTestBed = {
    server: undefined,
    get dir() {
      if (!dir) throw new Error("agentTestBed: no repoPrefix, so no folder per test");
      return dir;
    },
    get repo() {
      return join(bed.dir, "repo");
    },
    async supervise(agent, invocation, bin, limits) {
      const { launcher, groups } = recordingLauncher();
      const outputs: AgentOutput[] = [];
      const result = await superviseTurn(agent, invocation, bin, limits, {
        emit: (output) => outputs.push(output),
        launcher,
        signal: new AbortController().signal,
      });
      return { result, outputs, groups };
    },
    async run(agent, invocation, bin, io = {}) {
      const { launcher, groups } = recordingLauncher();
      const outputs: AgentOutput[] = [];
      const end = await agent.run(invocation, bin, {
        emit: (output) => outputs.push(output),
        alive: io.alive ?? (() => {}),
        signal: io.signal ?? new AbortController().signal,
        launcher,
        ...(io.env ? { env: io.env } : {}),
      });
      return { end, outputs, groups };
    },
  };
  if (options.repoPrefix) {
    const prefix = options.repoPrefix;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), prefix));
      execFileSync("git", ["init", "-q", join(dir, "repo")]);
    });
  }
  afterEach(async () => {
    await bed.server?.stop();
    bed.server = undefined;
    for (const launcher of launchers.splice(0)) launcher.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return bed;
}

/**
 * A turn in the test's repository for an agent that speaks the OpenAI API to the test's model
 * server (key sk-test-key), its state in the test's folder; `env` adds to that environment and
 * `more` sets any other field.
 */
export function openaiInvocation(
  bed: AgentTestBed,
  fields: { prompt: string; model?: string; env?: Record<string, string> },
  more: Partial<AgentInvocation> = {},
): AgentInvocation {
  return {
    prompt: fields.prompt,
    cwd: bed.repo,
    extraArgs: [],
    env: {
      OPENAI_BASE_URL: `${bed.server!.url}/v1`,
      OPENAI_API_KEY: "sk-test-key",
      RUNYARD_AGENT_STATE_DIR: join(bed.dir, "state"),
      ...fields.env,
    },
    scratchDir: join(bed.dir, "scratch"),
    ...(fields.model ? { model: fields.model } : {}),
    ...more,
  };
}

/** The agent's own requests carry its tools; a side call (a title, a next-speaker check) does not. */
export const withTools = (r: RecordedRequest) => Array.isArray((r.body as { tools?: unknown })?.tools);

/** A script that plays `turns` to the agent's own requests and answers every side call with `side`. */
export function mainScript(side: Turn, turns: Turn[]): Script {
  // A side call carries the conversation so far (Gemini CLI's next-speaker check does), so its
  // turn index grows with the main conversation: it is answered at any depth, as a model would.
  // Answered once only, a follow-up's side call was a 500 that the CLI retried with backoff (70 s).
  return { conversations: [{ match: withTools, turns }, { turns: Array.from({ length: 32 }, () => side) }] };
}

/** Starts a turn with a signal of its own, and cancels it once `ready` holds; its end. */
export async function cancelOnce<T>(
  what: string,
  ready: () => boolean,
  start: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const stop = new AbortController();
  const running = start(stop.signal);
  // Bounded by the test's own timeout: a real CLI's start-up on a loaded machine is the wait.
  let ended = false;
  void running.then(
    () => (ended = true),
    () => (ended = true),
  );
  await until(what, () => ready() || ended, 140_000);
  if (ended && !ready()) throw new Error(`the turn ended before ${what}: ${JSON.stringify(await running)}`);
  stop.abort();
  return running;
}

/** The command lines of this machine's processes that contain `text` (a turn's unique prompt). */
export function processesWith(text: string): string[] {
  return execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes(text));
}
