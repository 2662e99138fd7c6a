/**
 * The built-in `openai` loop against the scripted model server (Chat Completions), in a real git
 * repository, running commands through the real spawn launcher.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openaiAgent } from "../../src/agents/openai.js";
import type { AgentInvocation } from "../../src/agents/types.js";
import { agentTestBed, openaiInvocation } from "../helpers/agent-turn.js";
import { type Script, startModelServer, type Turn, turns } from "../model-server/server.js";

const bed = agentTestBed({ repoPrefix: "runyard-openai-agent-", launcher: "spawn" });

async function run(
  script: Script,
  more: Partial<AgentInvocation> = {},
  signal: AbortSignal = new AbortController().signal,
  onAlive: () => void = () => {},
) {
  bed.server ??= await startModelServer(script);
  const invocation = openaiInvocation(bed, { prompt: "write hello.txt", model: "gpt-4o-mini" }, more);
  return bed.run(openaiAgent, invocation, "", { signal, alive: onAlive });
}

const writeTurn: Turn = {
  text: "I will write the file.",
  toolCalls: [
    { name: "write_file", input: { path: "hello.txt", content: "hello from the script\n" }, id: "call_w" },
  ],
  usage: { input_tokens: 1000, output_tokens: 50 },
};
const checkTurn: Turn = {
  toolCalls: [{ name: "run_command", input: { command: "cat hello.txt && exit 3" }, id: "call_c" }],
  usage: { input_tokens: 1200, output_tokens: 20 },
};
const doneTurn: Turn = { text: "Wrote hello.txt.", usage: { input_tokens: 1300, output_tokens: 7 } };

describe("openai agent (built-in loop)", () => {
  it("writes the scripted file, runs a command and reports messages, tools and exactly the scripted usage", async () => {
    const { end, outputs } = await run(turns(writeTurn, checkTurn, doneTurn));
    expect(end).toMatchObject({ status: "success", exitCode: 0 });
    expect(readFileSync(join(bed.repo, "hello.txt"), "utf8")).toBe("hello from the script\n");
    const seen = outputs.filter((o) => o.type !== "session" && o.type !== "usage");
    expect(seen).toEqual([
      { type: "message", role: "assistant", text: "I will write the file." },
      { type: "tool_call", callId: "call_w", tool: "write_file", input: writeTurn.toolCalls![0]!.input },
      { type: "tool_result", callId: "call_w", output: "wrote 22 bytes to hello.txt" },
      { type: "tool_call", callId: "call_c", tool: "run_command", input: checkTurn.toolCalls![0]!.input },
      {
        type: "tool_result",
        callId: "call_c",
        output: "exit code 3\nhello from the script\n",
        isError: true,
      },
      { type: "message", role: "assistant", text: "Wrote hello.txt." },
    ]);
    const usage = outputs.filter((o) => o.type === "usage");
    expect(usage.map((u) => [u.inputTokens, u.outputTokens])).toEqual([
      [1000, 50],
      [1200, 20],
      [1300, 7],
    ]);
    // gpt-4o-mini list price: 0.15 / 0.6 USD per million tokens
    expect(usage[0]).toMatchObject({ model: "gpt-4o-mini", costUsd: (1000 * 0.15 + 50 * 0.6) / 1e6 });
    const request = bed.server!.requests[0]!;
    expect(request.headers.authorization).toBe("Bearer sk-test-key");
    const body = request.body as { stream: boolean; tools: Array<{ function: { name: string } }> };
    expect(body.stream).toBe(true);
    expect(body.tools.map((t) => t.function.name)).toEqual([
      "read_file",
      "write_file",
      "list_files",
      "search",
      "run_command",
    ]);
  });

  it("fails with AGENT_AUTH on a 401 without retrying", async () => {
    const { end, outputs } = await run(turns({ text: "never", fail: { kind: "status", status: 401 } }));
    expect(end.status).toBe("failed");
    expect(end.error?.code).toBe("AGENT_AUTH");
    expect(outputs.at(-1)).toMatchObject({ type: "failure", error: { code: "AGENT_AUTH" } });
    expect(bed.server!.requests).toHaveLength(1);
  });

  it("waits out two 429s with retry-after and then answers", async () => {
    // Fractional seconds, read as given: two waits of half a second.
    const limited = { kind: "status", status: 429, retryAfterSecs: 0.5 } as const;
    const started = Date.now();
    const { end, outputs } = await run(turns({ ...doneTurn, failFirst: [limited, limited] }));
    expect(end.status).toBe("success");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(bed.server!.requests).toHaveLength(3);
    expect(outputs).toContainEqual({ type: "message", role: "assistant", text: "Wrote hello.txt." });
  });

  it("fails with AGENT_RATE_LIMIT when the 429s outlast its three retries", async () => {
    // A short retry-after: the count of retries is the subject, not the wait.
    const { end } = await run(
      turns({ text: "never", fail: { kind: "status", status: 429, retryAfterSecs: 0.1 } }),
    );
    expect(end.error?.code).toBe("AGENT_RATE_LIMIT");
    expect(bed.server!.requests).toHaveLength(4);
  });

  it("continues a session: the follow-up turn sends the earlier conversation", async () => {
    const first = await run(
      turns(writeTurn, doneTurn, { text: "Second answer.", usage: { input_tokens: 1, output_tokens: 1 } }),
    );
    const session = first.outputs.find((o) => o.type === "session");
    expect(session).toBeDefined();
    const sessionId = (session as { sessionId: string }).sessionId;
    const second = await run(turns(), { prompt: "now say more", sessionId });
    expect(second.end.status).toBe("success");
    expect(second.outputs).toContainEqual({ type: "session", sessionId });
    expect(second.outputs).toContainEqual({ type: "message", role: "assistant", text: "Second answer." });
    const messages = (
      bed.server!.requests.at(-1)!.body as { messages: Array<{ role: string; content: unknown }> }
    ).messages;
    expect(messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "tool", "assistant", "user"]);
    expect(messages[1]!.content).toBe("write hello.txt");
    expect(messages[4]!.content).toBe("Wrote hello.txt.");
    expect(messages[5]!.content).toBe("now say more");
  });

  it("stops with AGENT_TURN_LIMIT after --max-turns model calls", async () => {
    const again: Turn = { toolCalls: [{ name: "list_files", input: {} }] };
    const { end } = await run(turns(again, again, again), { extraArgs: ["--max-turns", "2"] });
    expect(end.error?.code).toBe("AGENT_TURN_LIMIT");
    expect(bed.server!.requests).toHaveLength(2);
  });

  it("refuses a path outside the workspace and tells the model", async () => {
    const outside: Turn = {
      toolCalls: [{ name: "read_file", input: { path: "../outside.txt" }, id: "call_x" }],
    };
    const { end, outputs } = await run(turns(outside, doneTurn));
    expect(end.status).toBe("success");
    expect(outputs).toContainEqual({
      type: "tool_result",
      callId: "call_x",
      output: "error: ../outside.txt: paths may not contain ..",
      isError: true,
    });
  });

  it("is canceled at once while its command runs, and the command's process group is gone", async () => {
    const pidFile = join(bed.repo, "pid");
    const slow: Turn = {
      toolCalls: [{ name: "run_command", input: { command: `echo $$ > pid; echo started; sleep 30` } }],
    };
    const stop = new AbortController();
    let abortedAt = 0;
    const { end } = await run(turns(slow, doneTurn), {}, stop.signal, () => {
      if (stop.signal.aborted || !safeRead(pidFile)) return;
      abortedAt = Date.now();
      stop.abort();
    });
    expect(end.status).toBe("canceled");
    // From the cancel, not the start; well before the command's 30 s sleep ends.
    expect(Date.now() - abortedAt).toBeLessThan(20_000);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(() => process.kill(-pid, 0)).toThrow();
  });

  it("is canceled at once while the model's stream has stalled", async () => {
    const stop = new AbortController();
    let chunks = 0;
    const { end } = await run(
      turns({ text: "x", fail: { kind: "stall-mid-stream", afterEvents: 1 } }),
      {},
      stop.signal,
      () => {
        if (++chunks === 2) setImmediate(() => stop.abort());
      },
    );
    expect(end.status).toBe("canceled");
  });

  it("ends with AGENT_STALLED within stallMs under the supervisor when the stream stalls mid-way", async () => {
    bed.server = await startModelServer(
      turns({ text: "x", fail: { kind: "stall-mid-stream", afterEvents: 2 } }),
    );
    const started = Date.now();
    const { result } = await bed.supervise(openaiAgent, openaiInvocation(bed, { prompt: "hi" }), "", {
      timeoutMs: 30_000,
      stallMs: 1000,
    });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("AGENT_STALLED");
    // The stall watch (1 s), well before the time limit (30 s), which the code above tells apart too.
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
