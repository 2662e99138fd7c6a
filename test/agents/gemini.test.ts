/**
 * The gemini adapter with the real Gemini CLI, under the runner's supervisor, against the
 * scripted model server's Gemini API. Skips locally when the CLI cannot be installed; fails
 * under CI.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { geminiAgent } from "../../src/agents/gemini.js";
import type { TurnLimits } from "../../src/agents/supervise.js";
import type { AgentInvocation } from "../../src/agents/types.js";
import { groupIsAlive } from "../../src/exec/resources.js";
import { agentFor, agentTestBed, mainScript, pinnedCli, withTools } from "../helpers/agent-turn.js";
import { tempDir } from "../helpers/cli.js";
import { startModelServer, type Turn } from "../model-server/server.js";

const bin = pinnedCli(geminiAgent);
const bed = agentTestBed();

/** A side call, without tools, is a next-speaker check. */
const script = (...turns: Turn[]) =>
  mainScript({ text: '{"next_speaker":"user","reasoning":"done"}' }, turns);
const mainRequests = () => bed.server!.requests.filter(withTools);

async function turn(
  prompt: string,
  options: {
    cwd?: string;
    stateDir?: string;
    sessionId?: string;
    limits?: TurnLimits;
    /** Signs life for the CLI until this settles (see signingLifeUntil). */
    signsLifeUntil?: Promise<unknown>;
  } = {},
) {
  const cwd = options.cwd ?? tempDir("runyard-gemini-ws-");
  const scratchDir = tempDir("runyard-gemini-scratch-");
  const invocation: AgentInvocation = {
    prompt,
    cwd,
    model: "gemini-2.5-pro",
    extraArgs: [],
    env: {
      GOOGLE_GEMINI_BASE_URL: bed.server!.url,
      GEMINI_API_KEY: "gemini-test-key",
      HOME: cwd,
      // Sessions live in the CLI's home: a follow-up turn must find the same one.
      ...(options.stateDir ? { RUNYARD_AGENT_STATE_DIR: options.stateDir } : {}),
    },
    ...(options.sessionId ? { sessionId: options.sessionId } : {}),
    scratchDir,
  };
  // Gemini prints nothing while it starts (past 20 s on a loaded machine): the stall window is
  // the test's to set only where a stall is what it tests.
  const limits = options.limits ?? { timeoutMs: 120_000, stallMs: 60_000 };
  return {
    ...(await bed.supervise(agentFor(geminiAgent, options.signsLifeUntil), invocation, bin!, limits)),
    scratchDir,
  };
}

describe.skipIf(!bin)("the gemini adapter with the real CLI", { timeout: 150_000 }, () => {
  it("runs a scripted write_file task: the file is written, and the tokens are the script's", async () => {
    const cwd = tempDir("runyard-gemini-ws-");
    const file = join(cwd, "hello.txt");
    bed.server = await startModelServer(
      script(
        {
          text: "Writing.",
          toolCalls: [{ name: "write_file", input: { file_path: file, content: "hello\n" } }],
          usage: { input_tokens: 1000, output_tokens: 50 },
        },
        { text: "done", usage: { input_tokens: 1100, output_tokens: 7 } },
      ),
    );
    const { result, outputs, scratchDir } = await turn("-write hello.txt", { cwd });
    expect(result).toMatchObject({ status: "success", exitCode: 0, lastMessage: "done" });
    expect(readFileSync(file, "utf8")).toBe("hello\n");
    expect(outputs.filter((o) => o.type !== "usage")).toEqual([
      { type: "session", sessionId: result.sessionId },
      { type: "message", role: "assistant", text: "Writing." },
      {
        type: "tool_call",
        callId: expect.any(String),
        tool: "write_file",
        input: { file_path: file, content: "hello\n" },
      },
      { type: "tool_result", callId: expect.any(String), output: expect.any(String) },
      { type: "message", role: "assistant", text: "done" },
    ]);
    // No USD from the CLI: gemini-2.5-pro's list price ($1.25 / $10 per million tokens).
    expect(result.totals).toEqual({
      inputTokens: 2100,
      outputTokens: 57,
      costUsd: expect.closeTo((2100 * 1.25 + 57 * 10) / 1e6, 9),
      model: "gemini-2.5-pro",
    });
    const first = mainRequests()[0]!;
    expect(first.path).toBe("/v1beta/models/gemini-2.5-pro:streamGenerateContent");
    expect(first.headers["x-goog-api-key"]).toBe("gemini-test-key");
    expect(JSON.stringify(first.body)).toContain("-write hello.txt");
    const settings = JSON.parse(readFileSync(join(scratchDir, ".gemini", "settings.json"), "utf8"));
    expect(settings.security.auth.selectedType).toBe("gemini-api-key");
  });

  it("fails a 401 with AGENT_AUTH", async () => {
    bed.server = await startModelServer(
      script({ fail: { kind: "status", status: 401, message: "API key not valid." } }),
    );
    const { result } = await turn("say hi");
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_AUTH" } });
  });

  it("stops a stream that stalls mid-way with AGENT_STALLED, leaving no process behind", async () => {
    bed.server = await startModelServer(
      script({
        text: "a partial answer, long enough for two chunks",
        fail: { kind: "stall-mid-stream", afterEvents: 1 },
      }),
    );
    // The CLI prints nothing while it starts (past 20 s on a loaded machine): the turn signs life
    // for it until the stream has stalled, so the short window times the stall, not the start-up.
    const { result, groups } = await turn("say hi", {
      limits: { timeoutMs: 90_000, stallMs: 4000 },
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
    const stateDir = tempDir("runyard-gemini-state-");
    const cwd = tempDir("runyard-gemini-ws-");
    bed.server = await startModelServer(script({ text: "the first answer" }));
    const first = await turn("remember the word pelican", { cwd, stateDir });
    expect(first.result.status).toBe("success");
    bed.server.setScript(script({ text: "unused" }, { text: "the word was pelican" }));
    const second = await turn("what was the word?", { cwd, stateDir, sessionId: first.result.sessionId! });
    expect(second.result).toMatchObject({ status: "success", lastMessage: "the word was pelican" });
    const history = JSON.stringify((mainRequests().at(-1)!.body as { contents: unknown[] }).contents);
    expect(history).toContain("remember the word pelican");
    expect(history).toContain("the first answer");
  });
});
