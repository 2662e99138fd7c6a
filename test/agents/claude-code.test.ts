/**
 * The claude_code adapter with the real Claude Code CLI, under the runner's supervisor, against
 * the scripted model server. Skips locally when the CLI cannot be installed; fails under CI.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { claudeCodeAgent } from "../../src/agents/claude-code.js";
import type { TurnLimits } from "../../src/agents/supervise.js";
import type { AgentInvocation } from "../../src/agents/types.js";
import { groupIsAlive } from "../../src/exec/resources.js";
import { agentFor, agentTestBed, mainScript, pinnedCli, withTools } from "../helpers/agent-turn.js";
import { tempDir } from "../helpers/cli.js";
import { startModelServer, type Turn } from "../model-server/server.js";

const bin = pinnedCli(claudeCodeAgent);
const bed = agentTestBed();

/** A side call, without tools (none seen in 2.1.197), would get "ok". */
const script = (...turns: Turn[]) => mainScript({ text: "ok" }, turns);
const mainRequests = () => bed.server!.requests.filter(withTools);

async function turn(
  prompt: string,
  options: {
    cwd?: string;
    home?: string;
    env?: Record<string, string>;
    sessionId?: string;
    limits?: TurnLimits;
    /** Signs life for the CLI until this settles (see signingLifeUntil). */
    signsLifeUntil?: Promise<unknown>;
  } = {},
) {
  const cwd = options.cwd ?? tempDir("runyard-cc-ws-");
  const invocation: AgentInvocation = {
    prompt,
    cwd,
    extraArgs: [],
    env: {
      ANTHROPIC_BASE_URL: bed.server!.url,
      ANTHROPIC_API_KEY: "sk-ant-test-key",
      // Claude Code keeps its sessions under HOME: a follow-up turn must see the same one.
      HOME: options.home ?? cwd,
      ...options.env,
    },
    ...(options.sessionId ? { sessionId: options.sessionId } : {}),
    scratchDir: tempDir("runyard-cc-scratch-"),
  };
  // A stall window of a loaded machine's start-up: the test sets its own only where a stall is tested.
  const limits = options.limits ?? { timeoutMs: 120_000, stallMs: 60_000 };
  return {
    ...(await bed.supervise(agentFor(claudeCodeAgent, options.signsLifeUntil), invocation, bin!, limits)),
    cwd,
  };
}

describe.skipIf(!bin)("the claude_code adapter with the real CLI", { timeout: 250_000 }, () => {
  it("runs a scripted Write task: the file is written, and tokens and cost are the script's", async () => {
    const cwd = tempDir("runyard-cc-ws-");
    const file = join(cwd, "hello.txt");
    bed.server = await startModelServer(
      script(
        {
          text: "Writing.",
          toolCalls: [{ name: "Write", input: { file_path: file, content: "hello\n" } }],
          usage: { input_tokens: 1000, output_tokens: 50 },
        },
        { text: "done", usage: { input_tokens: 1100, output_tokens: 7 } },
      ),
    );
    const { result, outputs } = await turn("write hello.txt", { cwd });
    expect(result).toMatchObject({ status: "success", exitCode: 0, lastMessage: "done" });
    expect(readFileSync(file, "utf8")).toBe("hello\n");
    expect(result.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(outputs.filter((o) => o.type !== "usage")).toEqual([
      { type: "session", sessionId: result.sessionId },
      { type: "message", role: "assistant", text: "Writing." },
      {
        type: "tool_call",
        callId: expect.any(String),
        tool: "Write",
        input: { file_path: file, content: "hello\n" },
      },
      { type: "tool_result", callId: expect.any(String), output: expect.stringContaining("hello.txt") },
      { type: "message", role: "assistant", text: "done" },
    ]);
    // The CLI's default model (claude-opus-4-8 in 2.1.197) is priced at $5 / $25 per million tokens.
    expect(result.totals).toEqual({
      inputTokens: 2100,
      outputTokens: 57,
      costUsd: expect.closeTo((2100 * 5 + 57 * 25) / 1e6, 9),
      model: expect.stringMatching(/^claude-/),
    });
    expect(result.memoryPeakBytes).toBeGreaterThan(0);
  });

  it("passes --model, and a prompt that starts with a dash as the prompt", async () => {
    bed.server = await startModelServer(script({ text: "fine" }));
    const { result } = await turn("-v is not a flag here", { env: {} });
    expect(result.status).toBe("success");
    const body = mainRequests()[0]!.body as { messages: Array<{ content: unknown }> };
    expect(JSON.stringify(body.messages)).toContain("-v is not a flag here");
    bed.server.requests.length = 0;
    const cwd = tempDir("runyard-cc-ws-");
    const { result: withModel } = await bed.supervise(
      claudeCodeAgent,
      {
        prompt: "hi",
        cwd,
        model: "claude-sonnet-4-5",
        extraArgs: [],
        env: { ANTHROPIC_BASE_URL: bed.server.url, ANTHROPIC_API_KEY: "k", HOME: cwd },
        scratchDir: tempDir(),
      },
      bin!,
      { timeoutMs: 120_000, stallMs: 60_000 },
    );
    expect(withModel.status).toBe("success");
    expect((mainRequests()[0]!.body as { model: string }).model).toBe("claude-sonnet-4-5");
  });

  it("fails a 401 with AGENT_AUTH", async () => {
    bed.server = await startModelServer(
      script({ fail: { kind: "status", status: 401, message: "invalid x-api-key", shouldRetry: false } }),
    );
    const { result } = await turn("say hi", { env: { CLAUDE_CODE_MAX_RETRIES: "1" } });
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_AUTH" } });
    expect(result.error?.message).toContain("401");
  });

  it("waits out a 429 with retry-after twice, then succeeds", async () => {
    bed.server = await startModelServer(
      script({
        text: "after the rate limit",
        failFirst: [
          { kind: "status", status: 429, retryAfterSecs: 1 },
          { kind: "status", status: 429, retryAfterSecs: 1 },
        ],
      }),
    );
    const { result, outputs } = await turn("say hi");
    expect(result).toMatchObject({ status: "success", lastMessage: "after the rate limit" });
    expect(mainRequests()).toHaveLength(3);
    // Each retry is shown as a notice, not as the agent's message.
    expect(outputs.filter((o) => o.type === "notice")).toHaveLength(2);
  });

  it("fails a 429 that never ends with AGENT_RATE_LIMIT once the CLI's retries are spent", async () => {
    bed.server = await startModelServer(script({ fail: { kind: "status", status: 429, retryAfterSecs: 0 } }));
    const { result } = await turn("say hi", { env: { CLAUDE_CODE_MAX_RETRIES: "2" } });
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_RATE_LIMIT" } });
    expect(mainRequests()).toHaveLength(3);
  });

  it("stops a stream that stalls mid-way with AGENT_STALLED within stallMs, leaving no process behind", async () => {
    bed.server = await startModelServer(
      script({ text: "partial answer", fail: { kind: "stall-mid-stream", afterEvents: 4 } }),
    );
    // The CLI prints nothing while it starts (over 3 s beside two busy loops): the turn signs life
    // for it until the stream has stalled, so the 3 s window times the stall, not the start-up.
    const { result, groups } = await turn("say hi", {
      limits: { timeoutMs: 90_000, stallMs: 3000 },
      signsLifeUntil: bed.server.stalled,
    });
    const ended = Date.now();
    const stalled = bed.server.stalledRequest;
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_STALLED" } });
    expect(result.error?.message).toMatch(/silent for \d+(\.\d)? s \(its stall limit is 3 s\)/);
    // Counted from the request whose stream stalled: the stall limit and the CLI's SIGTERM grace,
    // well before the 90 s time limit a missed stall would wait.
    expect(stalled, "the CLI asked the model and its stream stalled before it was stopped").toBeDefined();
    expect(ended - stalled!.at).toBeLessThan(40_000);
    expect(groups).toHaveLength(1);
    expect(groupIsAlive(groups[0]!)).toBe(false);
  });

  it("stops a turn that passes its token budget mid-way with BUDGET_EXCEEDED, before the tool runs", async () => {
    const cwd = tempDir("runyard-cc-ws-");
    const file = join(cwd, "never.txt");
    bed.server = await startModelServer(
      script({
        text: "Writing.",
        toolCalls: [
          { name: "Bash", input: { command: `sleep 30; echo x > ${file}`, description: "slow write" } },
        ],
        usage: { input_tokens: 5000, output_tokens: 50 },
      }),
    );
    const { result, groups } = await turn("write never.txt", {
      cwd,
      limits: { timeoutMs: 120_000, stallMs: 60_000, budget: { tokens: 1000 } },
    });
    expect(result).toMatchObject({
      status: "failed",
      error: { code: "BUDGET_EXCEEDED", message: "the agent used 5000 tokens, over its budget of 1000" },
    });
    expect(groupIsAlive(groups[0]!)).toBe(false);
    expect(existsSync(file)).toBe(false);
  });

  it("continues a session: a follow-up with the session id sends the earlier turn's history", async () => {
    const home = tempDir("runyard-cc-home-");
    const cwd = tempDir("runyard-cc-ws-");
    bed.server = await startModelServer(script({ text: "the first answer" }));
    const first = await turn("remember the word pelican", { cwd, home });
    expect(first.result.status).toBe("success");
    const sessionId = first.result.sessionId!;
    bed.server.setScript(
      // The follow-up's history holds one assistant message already: it gets turn 1.
      script({ text: "unused" }, { text: "the word was pelican" }),
    );
    const second = await turn("what was the word?", { cwd, home, sessionId });
    expect(second.result).toMatchObject({ status: "success", lastMessage: "the word was pelican" });
    expect(second.result.sessionId).toBeDefined();
    const history = JSON.stringify((mainRequests().at(-1)!.body as { messages: unknown[] }).messages);
    expect(history).toContain("remember the word pelican");
    expect(history).toContain("the first answer");
    expect(history).toContain("what was the word?");
  });

  it("keeps its session in the conversation's state folder with the user's settings and not their login, so a follow-up under a fresh HOME resumes", async () => {
    // The runner user's own Claude Code folder (the runner's CLAUDE_CONFIG_DIR).
    const users = tempDir("runyard-cc-users-");
    writeFileSync(join(users, "settings.json"), '{"env":{"RUNYARD_TEST_FROM_SETTINGS":"1"}}\n');
    writeFileSync(join(users, "CLAUDE.md"), "Always answer like a heron-keeper.\n");
    writeFileSync(join(users, ".credentials.json"), '{"claudeAiOauth":{"accessToken":"operator"}}\n');
    const runnerConfig = process.env.CLAUDE_CONFIG_DIR;
    process.env.CLAUDE_CONFIG_DIR = users;
    onTestFinished(() => {
      if (runnerConfig === undefined) delete process.env.CLAUDE_CONFIG_DIR;
      else process.env.CLAUDE_CONFIG_DIR = runnerConfig;
    });
    // The run's HOME names another .claude: never copied (a member's env could name any folder).
    const home = tempDir("runyard-cc-home-");
    mkdirSync(join(home, ".claude"));
    writeFileSync(join(home, ".claude", "CLAUDE.md"), "Chosen by the run.\n");
    const state = tempDir("runyard-cc-state-");
    const cwd = tempDir("runyard-cc-ws-");
    bed.server = await startModelServer(script({ text: "the first answer" }, { text: "the second answer" }));
    const first = await turn("remember the word pelican", {
      cwd,
      home,
      env: { RUNYARD_AGENT_STATE_DIR: state },
    });
    expect(first.result.status).toBe("success");
    const config = join(state, "claude");
    expect(readFileSync(join(config, "settings.json"), "utf8")).toContain("RUNYARD_TEST_FROM_SETTINGS");
    expect(JSON.stringify(mainRequests()[0]!.body)).toContain("heron-keeper");
    expect(existsSync(join(config, ".credentials.json"))).toBe(false);
    expect(readFileSync(join(config, "CLAUDE.md"), "utf8")).not.toContain("Chosen by the run");
    expect(existsSync(join(home, ".claude", "projects"))).toBe(false);
    expect(existsSync(join(users, "projects"))).toBe(false);
    // As under the sandbox: the follow-up's HOME is an empty folder of its own.
    const second = await turn("what was the word?", {
      cwd,
      home: tempDir("runyard-cc-empty-home-"),
      env: { RUNYARD_AGENT_STATE_DIR: state },
      sessionId: first.result.sessionId!,
    });
    expect(second.result).toMatchObject({ status: "success", lastMessage: "the second answer" });
    const history = JSON.stringify((mainRequests().at(-1)!.body as { messages: unknown[] }).messages);
    expect(history).toContain("remember the word pelican");
    expect(history).toContain("the first answer");
  });

  it("reports a missing CLI as AGENT_NOT_INSTALLED", async () => {
    bed.server = await startModelServer(script({ text: "never" }));
    const cwd = tempDir();
    const { result } = await bed.supervise(
      claudeCodeAgent,
      { prompt: "hi", cwd, extraArgs: [], env: {}, scratchDir: cwd },
      join(cwd, "no-claude-here"),
      { timeoutMs: 10_000, stallMs: 10_000 },
    );
    expect(result).toMatchObject({
      status: "failed",
      error: {
        code: "AGENT_NOT_INSTALLED",
        hint: expect.stringContaining("runyard agents install claude_code"),
      },
    });
    expect(existsSync(join(cwd, "no-claude-here"))).toBe(false);
  });
});
