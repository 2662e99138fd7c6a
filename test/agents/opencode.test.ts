/**
 * The opencode adapter with the real OpenCode CLI (installed once by agentCli) against the scripted
 * model server's Chat Completions API, in a real git repository, started through the real spawn
 * launcher. OpenCode asks for a session title in a request without tools: the first conversation
 * of every script answers those.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { opencodeAgent } from "../../src/agents/opencode.js";
import type { AgentInvocation } from "../../src/agents/types.js";
import {
  agentTestBed,
  cancelOnce,
  openaiInvocation,
  pinnedCli,
  processesWith,
  signingLifeUntil,
} from "../helpers/agent-turn.js";
import { type RecordedRequest, startModelServer, type Turn } from "../model-server/server.js";

const pkg = opencodeAgent.package!;
const bin = pinnedCli(opencodeAgent);
const bed = agentTestBed({ repoPrefix: "runyard-opencode-", launcher: "spawn" });

const isTitleCall = (r: RecordedRequest) => !(r.body as { tools?: unknown[] }).tools?.length;
const agentCalls = () =>
  bed.server!.requests.filter((r) => r.path === "/v1/chat/completions" && !isTitleCall(r));

async function run(
  agentTurns: Turn[],
  more: Partial<AgentInvocation> = {},
  signal?: AbortSignal,
  runnerEnv?: NodeJS.ProcessEnv,
) {
  bed.server ??= await startModelServer({
    conversations: [
      { match: isTitleCall, turns: [{ text: "A title", usage: { input_tokens: 5, output_tokens: 2 } }] },
      { turns: agentTurns },
    ],
  });
  const invocation = openaiInvocation(bed, { prompt: "add hello.txt", model: "gpt-4o-mini" }, more);
  return bed.run(opencodeAgent, invocation, bin!, {
    ...(signal ? { signal } : {}),
    ...(runnerEnv ? { env: runnerEnv } : {}),
  });
}

const writeTurn = (): Turn => ({
  text: "I will add the file.",
  toolCalls: [
    { name: "write", input: { filePath: join(bed.repo, "hello.txt"), content: "hello from the script\n" } },
  ],
  usage: { input_tokens: 1000, output_tokens: 50 },
});
const bashTurn: Turn = {
  toolCalls: [{ name: "bash", input: { command: "cat hello.txt", description: "Show the file" } }],
  usage: { input_tokens: 1200, output_tokens: 20 },
};
const doneTurn: Turn = { text: "Added hello.txt.", usage: { input_tokens: 1300, output_tokens: 7 } };

// OpenCode takes 4 to 9 s to start on a quiet machine and past 40 s on a loaded one: each turn
// here gets the time of a few start-ups, not the suite's 60 s.
describe.skipIf(!bin)(`opencode adapter (real opencode-ai ${pkg.version})`, { timeout: 150_000 }, () => {
  it("fails with AGENT_AUTH on a 401 without retrying", async () => {
    const { end } = await run([{ text: "never", fail: { kind: "status", status: 401 } }]);
    expect(end.status).toBe("failed");
    expect(end.error?.code).toBe("AGENT_AUTH");
    expect(agentCalls()).toHaveLength(1);
  });

  // One turn for three guards (each an OpenCode start-up, 10 to 25 s of CPU on a loaded machine).
  it("waits out two 429s with retry-after and then answers; leaves nothing in the runner's temp folder (what it writes to $TMPDIR goes with the turn) and passes a prompt that starts with a dash as the prompt", async () => {
    // OpenCode reads a retry-after of fractional seconds as given.
    const limited = { kind: "status", status: 429, retryAfterSecs: 0.5 } as const;
    const runnerTmp = mkdtempSync(join(tmpdir(), "runyard-opencode-runner-tmp-"));
    try {
      const started = Date.now();
      const { end, outputs } = await run(
        [{ ...doneTurn, failFirst: [limited, limited] }],
        { prompt: "-say hi" },
        undefined,
        {
          ...process.env,
          TMPDIR: runnerTmp,
        },
      );
      expect(end.status).toBe("success");
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
      expect(outputs).toContainEqual({ type: "message", role: "assistant", text: "Added hello.txt." });
      // Before, a 5.5 MB shared library of OpenCode's was left there at every start.
      expect(readdirSync(runnerTmp)).toEqual([]);
      const messages = (agentCalls()[0]!.body as { messages: unknown[] }).messages;
      expect(JSON.stringify(messages.at(-1))).toContain("-say hi");
    } finally {
      rmSync(runnerTmp, { recursive: true, force: true });
    }
  });

  it("fails with AGENT_RATE_LIMIT when the 429s outlast llm_retry_count (3 by default), not its own five retries", async () => {
    const started = Date.now();
    // Six 429s, more than OpenCode's own five retries: short waits before the calls the cap allows,
    // then a long one (8 s, which OpenCode waits) after the last of them. The adapter stops OpenCode once it reads that 429;
    // OpenCode's graceful stop takes 0.1 s here, and a loaded machine's took longer than a 2 s
    // wait (a fifth call). A broken cap shows as a fifth call after the long wait.
    const waits = [0.5, 0.5, 0.5, 8, 0.5, 0.5];
    const { end } = await run([
      {
        text: "never",
        failFirst: waits.map((retryAfterSecs) => ({ kind: "status", status: 429, retryAfterSecs }) as const),
      },
    ]);
    expect(end.error).toMatchObject({
      code: "AGENT_RATE_LIMIT",
      message: expect.stringContaining("llm_retry_count is 3"),
    });
    expect(agentCalls()).toHaveLength(4);
    console.log(`opencode: 429 forever took ${Date.now() - started} ms`);
  });

  it("writes the scripted file, reports messages, tools and exactly the scripted usage, and continues the session: the follow-up turn sends the earlier history", async () => {
    // One start-up of OpenCode (4 to 5 s of CPU) serves both: the follow-up needs a first turn.
    const second: Turn = { text: "Second answer.", usage: { input_tokens: 1400, output_tokens: 3 } };
    const first = await run([writeTurn(), bashTurn, doneTurn, second]);
    const { end, outputs } = first;
    expect(end).toMatchObject({ status: "success", exitCode: 0 });
    expect(readFileSync(join(bed.repo, "hello.txt"), "utf8")).toBe("hello from the script\n");
    expect(outputs.map((o) => o.type)).toEqual([
      "session",
      "message",
      "tool_call",
      "tool_result",
      "usage",
      "tool_call",
      "tool_result",
      "usage",
      "message",
      "usage",
    ]);
    expect(outputs).toContainEqual(expect.objectContaining({ type: "tool_call", tool: "write" }));
    expect(outputs).toContainEqual(
      expect.objectContaining({ type: "tool_result", output: "hello from the script\n" }),
    );
    const usage = outputs.filter((o) => o.type === "usage");
    expect(usage.map((u) => [u.inputTokens, u.outputTokens])).toEqual([
      [1000, 50],
      [1200, 20],
      [1300, 7],
    ]);
    const request = agentCalls()[0]!;
    expect(request.headers.authorization).toBe("Bearer sk-test-key");
    expect(request.body).toMatchObject({ model: "gpt-4o-mini", stream: true });
    const session = first.outputs.find((o) => o.type === "session") as { sessionId: string };
    const next = await run([], { prompt: "now say more", sessionId: session.sessionId });
    expect(next.end.status).toBe("success");
    expect(next.outputs).toEqual([
      { type: "session", sessionId: session.sessionId },
      { type: "message", role: "assistant", text: "Second answer." },
      expect.objectContaining({ type: "usage", inputTokens: 1400, outputTokens: 3 }),
    ]);
    const messages = (agentCalls().at(-1)!.body as { messages: Array<{ role: string; content: unknown }> })
      .messages;
    expect(messages.map((m) => m.role)).toEqual([
      "system",
      "user",
      "assistant",
      "tool",
      "assistant",
      "tool",
      "assistant",
      "user",
    ]);
    expect(JSON.stringify(messages[1])).toContain("add hello.txt");
    expect(JSON.stringify(messages.at(-1))).toContain("now say more");
    // Two start-ups of OpenCode: past 25 s each on a loaded machine.
  }, 240_000);

  it("is canceled while the model's stream has stalled, leaving no opencode process", async () => {
    const prompt = `stall ${Date.now()}`;
    const { end } = await cancelOnce(
      "opencode asked the model",
      () => (bed.server ? agentCalls().length > 0 : false),
      (signal) =>
        run([{ text: "x", fail: { kind: "stall-mid-stream", afterEvents: 3 } }], { prompt }, signal),
    );
    expect(end.status).toBe("canceled");
    const left = processesWith(prompt);
    expect(left).toEqual([]);
  });

  it("ends with AGENT_STALLED under the supervisor when the stream stalls mid-way", async () => {
    // The supervisor's stall watch runs from the turn's start, and OpenCode prints nothing for its
    // start-up (4 to 9 s idle, past 20 s on a loaded machine). So the turn signs life for it until
    // the scripted server has left its stream stalled; from then on only OpenCode's output does,
    // and a window of 2 s times the stalled stream, not the start-up.
    bed.server = await startModelServer({
      conversations: [
        { match: isTitleCall, turns: [{ text: "A title" }] },
        { turns: [{ text: "x", fail: { kind: "stall-mid-stream", afterEvents: 3 } }] },
      ],
    });
    const prompt = `stall ${Date.now()}`;
    const { result } = await bed.supervise(
      signingLifeUntil(opencodeAgent, bed.server.stalled),
      openaiInvocation(bed, { prompt, model: "gpt-4o-mini" }),
      bin!,
      { timeoutMs: 90_000, stallMs: 2_000 },
    );
    expect(result.error?.code).toBe("AGENT_STALLED");
    expect(agentCalls()).toHaveLength(1);
    const left = processesWith(prompt);
    expect(left).toEqual([]);
  });
});
