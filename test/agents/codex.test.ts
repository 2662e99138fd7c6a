/**
 * The codex adapter with the real Codex CLI (installed once by agentCli) against the scripted model
 * server's Responses API, in a real git repository, started through the real spawn launcher.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { codexAgent } from "../../src/agents/codex.js";
import type { AgentInvocation } from "../../src/agents/types.js";
import {
  agentTestBed,
  cancelOnce,
  openaiInvocation,
  pinnedCli,
  processesWith,
  signingLifeUntil,
} from "../helpers/agent-turn.js";
import { type Script, startModelServer, type Turn, turns } from "../model-server/server.js";

const pkg = codexAgent.package!;
const bin = pinnedCli(codexAgent);
const bed = agentTestBed({ repoPrefix: "runyard-codex-", launcher: "spawn" });

/** A turn in the test's repository against the test's model server, changed by `more`. */
const invocation = (more: Partial<AgentInvocation> = {}): AgentInvocation =>
  openaiInvocation(
    bed,
    { prompt: "add hello.txt", model: "gpt-5.5", env: { CODEX_HOME: join(bed.dir, "codex-home") } },
    more,
  );

async function run(script: Script, more: Partial<AgentInvocation> = {}, signal?: AbortSignal) {
  bed.server ??= await startModelServer(script);
  return bed.run(codexAgent, invocation(more), bin!, signal ? { signal } : {});
}

const patch = "*** Begin Patch\n*** Add File: hello.txt\n+hello from the script\n*** End Patch\n";
const patchTurn: Turn = {
  text: "I will add the file.",
  toolCalls: [{ name: "apply_patch", input: { input: patch } }],
  usage: { input_tokens: 1000, output_tokens: 50 },
};
const catTurn: Turn = {
  toolCalls: [{ name: "exec_command", input: { cmd: "cat hello.txt", login: false, yield_time_ms: 30000 } }],
  usage: { input_tokens: 1200, output_tokens: 20 },
};
const doneTurn: Turn = { text: "Added hello.txt.", usage: { input_tokens: 1300, output_tokens: 7 } };

describe.skipIf(!bin)(`codex adapter (real @openai/codex ${pkg.version})`, () => {
  it("writes the scripted file and reports messages, tools and exactly the scripted usage", async () => {
    const { end, outputs } = await run(turns(patchTurn, catTurn, doneTurn));
    expect(end).toMatchObject({ status: "success", exitCode: 0 });
    expect(readFileSync(join(bed.repo, "hello.txt"), "utf8")).toBe("hello from the script\n");
    expect(outputs.map((o) => o.type)).toEqual([
      "session",
      "message",
      "tool_call",
      "tool_result",
      "tool_call",
      "tool_result",
      "message",
      "usage",
    ]);
    expect(outputs).toContainEqual(expect.objectContaining({ type: "tool_call", tool: "apply_patch" }));
    expect(outputs).toContainEqual(
      expect.objectContaining({ type: "tool_result", output: "hello from the script\n" }),
    );
    expect(outputs.at(-1)).toEqual({
      type: "usage",
      model: "gpt-5.5",
      inputTokens: 3500,
      outputTokens: 77,
      costUsd: (3500 * 1.25 + 77 * 10) / 1e6,
    });
    const request = bed.server!.requests[0]!;
    expect(request.headers.authorization).toBe("Bearer sk-test-key");
    expect(request.body).toMatchObject({ model: "gpt-5.5", stream: true, store: false });
  });

  it("fails with AGENT_AUTH on a 401, after its three retries", async () => {
    const started = Date.now();
    const { end } = await run(turns({ text: "never", fail: { kind: "status", status: 401 } }));
    expect(end.status).toBe("failed");
    expect(end.error).toMatchObject({
      code: "AGENT_AUTH",
      message: expect.stringContaining("401 Unauthorized"),
    });
    expect(bed.server!.requests.filter((r) => r.path === "/v1/responses")).toHaveLength(4);
    console.log(`codex: 401 with 3 retries took ${Date.now() - started} ms`);
  });

  it("waits out two 429s with retry-after and then answers", async () => {
    const limited = { kind: "status", status: 429, retryAfterSecs: 1 } as const;
    const started = Date.now();
    const { end, outputs } = await run(turns({ ...doneTurn, failFirst: [limited, limited] }));
    expect(end.status).toBe("success");
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(outputs).toContainEqual({ type: "message", role: "assistant", text: "Added hello.txt." });
  });

  it("fails with AGENT_RATE_LIMIT when the 429s outlast its retries", async () => {
    const started = Date.now();
    const { end } = await run(
      turns({ text: "never", fail: { kind: "status", status: 429, retryAfterSecs: 1 } }),
    );
    expect(end.error?.code).toBe("AGENT_RATE_LIMIT");
    expect(bed.server!.requests.filter((r) => r.path === "/v1/responses")).toHaveLength(4);
    console.log(`codex: 429 forever with 3 retries took ${Date.now() - started} ms`);
  });

  it("continues a session: the follow-up turn sends the earlier history and counts only its own tokens", async () => {
    const second: Turn = { text: "Second answer.", usage: { input_tokens: 1400, output_tokens: 3 } };
    const first = await run(turns(patchTurn, catTurn, doneTurn, second));
    const session = first.outputs.find((o) => o.type === "session") as { sessionId: string };
    const next = await run(turns(), { prompt: "now say more", sessionId: session.sessionId });
    expect(next.end.status).toBe("success");
    expect(next.outputs).toContainEqual({ type: "session", sessionId: session.sessionId });
    expect(next.outputs).toContainEqual({ type: "message", role: "assistant", text: "Second answer." });
    expect(next.outputs.filter((o) => o.type === "usage")).toEqual([
      expect.objectContaining({ inputTokens: 1400, outputTokens: 3 }),
    ]);
    const input = (bed.server!.requests.at(-1)!.body as { input: Array<{ type: string; role?: string }> })
      .input;
    const texts = JSON.stringify(input);
    expect(texts).toContain("add hello.txt");
    expect(texts).toContain("Added hello.txt.");
    expect(input.at(-1)).toMatchObject({ type: "message", role: "user" });
    expect(JSON.stringify(input.at(-1))).toContain("now say more");
  });

  it("is canceled while the model's stream has stalled, leaving no codex process", async () => {
    const prompt = `stall ${Date.now()}`;
    const { end } = await cancelOnce(
      "codex asked the model",
      () => (bed.server?.requests.length ?? 0) > 0,
      (signal) =>
        run(turns({ text: "x", fail: { kind: "stall-mid-stream", afterEvents: 3 } }), { prompt }, signal),
    );
    expect(end.status).toBe("canceled");
    const left = processesWith(prompt);
    expect(left).toEqual([]);
  });

  it("ends with AGENT_STALLED within stallMs under the supervisor when the stream stalls mid-way", async () => {
    // Codex itself would wait stream_idle_timeout_ms (300 s) per attempt.
    bed.server = await startModelServer(
      turns({ text: "x", fail: { kind: "stall-mid-stream", afterEvents: 3 } }),
    );
    const prompt = `stall ${Date.now()}`;
    const { result } = await bed.supervise(
      signingLifeUntil(codexAgent, bed.server.stalled),
      invocation({ prompt }),
      bin!,
      { timeoutMs: 60_000, stallMs: 3000 },
    );
    const ended = Date.now();
    const stalled = bed.server.stalledRequest;
    expect(result.error?.code).toBe("AGENT_STALLED");
    // Counted from the request whose stream stalled, not from Codex's start-up: the 3 s stall
    // limit and stopping Codex, well before the 60 s time limit a missed stall would wait.
    expect(stalled, "Codex asked the model and its stream stalled before it was stopped").toBeDefined();
    expect(ended - stalled!.at).toBeLessThan(25_000);
    const left = processesWith(prompt);
    expect(left).toEqual([]);
  });

  it("passes a prompt that starts with a dash as the prompt", async () => {
    const { end } = await run(turns(doneTurn), { prompt: "-say hi" });
    expect(end.status).toBe("success");
    const input = (bed.server!.requests[0]!.body as { input: unknown[] }).input;
    expect(JSON.stringify(input.at(-1))).toContain('"text":"-say hi"');
  });
});
