/**
 * The copilot adapter with the real Copilot CLI, under the runner's supervisor, against the
 * scripted model server's Chat Completions (BYOK, offline). Skips locally when the CLI cannot
 * be installed; fails under CI.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { copilotAgent } from "../../src/agents/copilot.js";
import type { TurnLimits } from "../../src/agents/supervise.js";
import type { AgentInvocation } from "../../src/agents/types.js";
import { groupIsAlive } from "../../src/exec/resources.js";
import { agentFor, agentTestBed, mainScript, pinnedCli, withTools } from "../helpers/agent-turn.js";
import { tempDir } from "../helpers/cli.js";
import { startModelServer, type Turn } from "../model-server/server.js";

const bin = pinnedCli(copilotAgent);
const bed = agentTestBed();

const script = (...turns: Turn[]) => mainScript({ text: "ok" }, turns);
const mainRequests = () => bed.server!.requests.filter(withTools);

async function turn(
  prompt: string,
  options: {
    cwd?: string;
    home?: string;
    sessionId?: string;
    limits?: TurnLimits;
    /** Signs life for the CLI until this settles (see signingLifeUntil). */
    signsLifeUntil?: Promise<unknown>;
  } = {},
) {
  const cwd = options.cwd ?? tempDir("runyard-copilot-ws-");
  const invocation: AgentInvocation = {
    prompt,
    cwd,
    model: "gpt-4.1",
    extraArgs: [],
    env: {
      COPILOT_PROVIDER_BASE_URL: `${bed.server!.url}/v1`,
      COPILOT_PROVIDER_API_KEY: "sk-copilot-test-key",
      // Copilot keeps its sessions under HOME/.copilot: a follow-up turn must see the same one.
      HOME: options.home ?? cwd,
    },
    ...(options.sessionId ? { sessionId: options.sessionId } : {}),
    scratchDir: tempDir("runyard-copilot-scratch-"),
  };
  // Copilot prints nothing while it starts (past 20 s on a loaded machine): the stall window is
  // the test's to set only where a stall is what it tests.
  return bed.supervise(
    agentFor(copilotAgent, options.signsLifeUntil),
    invocation,
    bin!,
    options.limits ?? { timeoutMs: 120_000, stallMs: 60_000 },
  );
}

describe.skipIf(!bin)("the copilot adapter with the real CLI", { timeout: 250_000 }, () => {
  it("runs a scripted create task: the file is written, and the tokens are the script's", async () => {
    const cwd = tempDir("runyard-copilot-ws-");
    const file = join(cwd, "hello.txt");
    bed.server = await startModelServer(
      script(
        {
          text: "Writing.",
          toolCalls: [{ name: "create", input: { path: file, file_text: "hello\n" } }],
          usage: { input_tokens: 1000, output_tokens: 50 },
        },
        { text: "done", usage: { input_tokens: 1100, output_tokens: 7 } },
      ),
    );
    const { result, outputs } = await turn("-create hello.txt", { cwd });
    expect(result).toMatchObject({ status: "success", exitCode: 0, lastMessage: "done" });
    expect(readFileSync(file, "utf8")).toBe("hello\n");
    expect(outputs.filter((o) => o.type === "tool_call" || o.type === "tool_result")).toEqual([
      {
        type: "tool_call",
        callId: expect.any(String),
        tool: "create",
        input: { path: file, file_text: "hello\n" },
      },
      { type: "tool_result", callId: expect.any(String), output: expect.stringContaining("Created file") },
    ]);
    // No USD from the CLI: gpt-4.1's list price ($2 / $8 per million tokens).
    expect(result.totals).toEqual({
      inputTokens: 2100,
      outputTokens: 57,
      costUsd: expect.closeTo((2100 * 2 + 57 * 8) / 1e6, 9),
      model: "gpt-4.1",
    });
    // The prompt that starts with a dash reached the model as the prompt.
    expect(JSON.stringify(mainRequests()[0]!.body)).toContain("-create hello.txt");
  });

  it("fails a 401 with AGENT_AUTH", async () => {
    bed.server = await startModelServer(
      script({ fail: { kind: "status", status: 401, message: "invalid api key" } }),
    );
    const { result } = await turn("say hi");
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_AUTH" } });
  });

  it("fails a 429 that never ends with AGENT_RATE_LIMIT after its own retries", async () => {
    bed.server = await startModelServer(script({ fail: { kind: "status", status: 429, retryAfterSecs: 1 } }));
    const { result, outputs } = await turn("say hi");
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_RATE_LIMIT" } });
    expect(outputs.filter((o) => o.type === "message" && o.role === "system").length).toBeGreaterThan(0);
  });

  it("stops a stream that stalls mid-way with AGENT_STALLED, leaving no process behind", async () => {
    bed.server = await startModelServer(
      script({ text: "partial answer", fail: { kind: "stall-mid-stream", afterEvents: 2 } }),
    );
    // The CLI prints nothing while it starts (past 20 s on a loaded machine): the turn signs life
    // for it until the stream has stalled, so the short window times the stall, not the start-up.
    const { result, groups } = await turn("say hi", {
      limits: { timeoutMs: 90_000, stallMs: 3000 },
      signsLifeUntil: bed.server.stalled,
    });
    const ended = Date.now();
    const stalled = bed.server.stalledRequest;
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_STALLED" } });
    // Counted from the request whose stream stalled, well before the 90 s time limit a missed
    // stall would wait.
    expect(stalled, "the CLI asked the model and its stream stalled before it was stopped").toBeDefined();
    expect(ended - stalled!.at).toBeLessThan(40_000);
    expect(groups).toHaveLength(1);
    expect(groupIsAlive(groups[0]!)).toBe(false);
  });

  it("continues a session: a follow-up with the session id sends the earlier turn's history", async () => {
    const home = tempDir("runyard-copilot-home-");
    const cwd = tempDir("runyard-copilot-ws-");
    bed.server = await startModelServer(script({ text: "the first answer" }));
    const first = await turn("remember the word pelican", { cwd, home });
    expect(first.result.status).toBe("success");
    const sessionId = first.result.sessionId!;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    bed.server.setScript(script({ text: "unused" }, { text: "the word was pelican" }));
    const second = await turn("what was the word?", { cwd, home, sessionId });
    expect(second.result).toMatchObject({ status: "success", lastMessage: "the word was pelican" });
    const history = JSON.stringify((mainRequests().at(-1)!.body as { messages: unknown[] }).messages);
    expect(history).toContain("remember the word pelican");
    expect(history).toContain("the first answer");
  });
});
