import { describe, expect, it } from "vitest";
import type { ProcessLauncher } from "../exec/types.js";
import { superviseTurn, type TurnLimits } from "./supervise.js";
import type { AgentAdapter, AgentInvocation, AgentIo, AgentOutput, AgentTurnEnd } from "./types.js";

/**
 * An in-process stand-in for an adapter: the supervisor's own contract is what is under test
 * here (the real adapters run under it in test/agents/).
 */
function fakeAdapter(play: (io: AgentIo) => Promise<AgentTurnEnd["status"]>): AgentAdapter & {
  sawAbort: () => boolean;
} {
  let aborted = false;
  return {
    name: "claude_code",
    credentialEnv: [],
    sawAbort: () => aborted,
    async run(_invocation, _bin, io) {
      io.signal.addEventListener("abort", () => {
        aborted = true;
      });
      const status = await play(io);
      return {
        status,
        exitCode: status === "success" ? 0 : null,
        durationMs: 1,
        memoryPeakBytes: 2,
        cpuMs: 3,
      };
    },
  };
}

/** Resolves once the adapter's signal is aborted, like a CLI killed by its launcher. */
const untilAborted = (io: AgentIo) =>
  new Promise<AgentTurnEnd["status"]>((resolve) =>
    io.signal.addEventListener("abort", () => resolve("canceled"), { once: true }),
  );

const invocation: AgentInvocation = { prompt: "p", cwd: "/tmp", extraArgs: [], env: {}, scratchDir: "/tmp" };
const noLauncher: ProcessLauncher = {
  run: () => Promise.reject(new Error("the fake adapter starts no process")),
  close: async () => {},
};
const roomy: TurnLimits = { timeoutMs: 10_000, stallMs: 10_000 };

function supervise(adapter: AgentAdapter, limits: TurnLimits = roomy, signal = new AbortController().signal) {
  const emitted: AgentOutput[] = [];
  const result = superviseTurn(adapter, invocation, "/bin/fake", limits, {
    emit: (output) => emitted.push(output),
    launcher: noLauncher,
    signal,
  });
  return { emitted, result };
}

describe("superviseTurn", () => {
  it("passes outputs on and sums usage, keeping the last session id and assistant message", async () => {
    const adapter = fakeAdapter(async (io) => {
      io.emit({ type: "session", sessionId: "s1" });
      io.emit({ type: "message", role: "assistant", text: "first" });
      io.emit({
        type: "usage",
        model: "claude-sonnet-4-5",
        inputTokens: 100,
        outputTokens: 10,
        costUsd: 0.5,
      });
      io.emit({ type: "message", role: "user", text: "tool output" });
      io.emit({ type: "message", role: "assistant", text: "done" });
      io.emit({
        type: "usage",
        model: "claude-sonnet-4-5",
        inputTokens: 200,
        outputTokens: 20,
        costUsd: 0.25,
      });
      io.emit({ type: "session", sessionId: "s2" });
      return "success";
    });
    const { emitted, result } = supervise(adapter);
    expect(await result).toEqual({
      status: "success",
      exitCode: 0,
      durationMs: 1,
      memoryPeakBytes: 2,
      cpuMs: 3,
      totals: { inputTokens: 300, outputTokens: 30, costUsd: 0.75, model: "claude-sonnet-4-5" },
      sessionId: "s2",
      lastMessage: "done",
    });
    expect(emitted).toHaveLength(7);
  });

  it("prices usage without a reported cost from the price table, and leaves an unpriceable cost unknown", async () => {
    const priced = await supervise(
      fakeAdapter(async (io) => {
        io.emit({ type: "usage", model: "gpt-4.1", inputTokens: 1_000_000, outputTokens: 0 });
        return "success";
      }),
    ).result;
    expect(priced.totals.costUsd).toBeCloseTo(2);
    const unknown = await supervise(
      fakeAdapter(async (io) => {
        io.emit({ type: "usage", model: "gpt-4.1", inputTokens: 1000, outputTokens: 0 });
        io.emit({ type: "usage", model: "some-local-model", inputTokens: 1000, outputTokens: 0 });
        return "success";
      }),
    ).result;
    expect(unknown.totals).toEqual({ inputTokens: 2000, outputTokens: 0, model: "some-local-model" });
  });

  it("stops a silent agent after stallMs with AGENT_STALLED, saying how long it was silent", async () => {
    const adapter = fakeAdapter(async (io) => {
      io.emit({ type: "message", role: "assistant", text: "starting" });
      return untilAborted(io);
    });
    const startedAt = Date.now();
    const result = await supervise(adapter, { timeoutMs: 60_000, stallMs: 100 }).result;
    // Stopped by the stall watch, not the time limit (60 s); a busy machine's timers may come late.
    expect(Date.now() - startedAt).toBeLessThan(20_000);
    expect(adapter.sawAbort()).toBe(true);
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("AGENT_STALLED");
    expect(result.error?.message).toMatch(/silent for \d+\.\d s \(its stall limit is 0\.1 s\)/);
    expect(result.lastMessage).toBe("starting");
  });

  it("keeps an agent that shows signs of life past stallMs", async () => {
    const adapter = fakeAdapter(async (io) => {
      // Eight beats 200 ms apart: 1.6 s in all, over a stall limit of 1 s that leaves a busy
      // machine's late timer 800 ms (a limit of 150 ms left it 120).
      for (let beat = 0; beat < 8; beat++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        io.alive();
      }
      return "success";
    });
    const result = await supervise(adapter, { timeoutMs: 10_000, stallMs: 1000 }).result;
    expect(result.status).toBe("success");
    expect(adapter.sawAbort()).toBe(false);
  });

  it("stops an agent at its time limit with TIMEOUT, however lively it is", async () => {
    const adapter = fakeAdapter(async (io) => {
      const beat = setInterval(() => io.alive(), 10);
      const status = await untilAborted(io);
      clearInterval(beat);
      return status;
    });
    const result = await supervise(adapter, { timeoutMs: 200, stallMs: 10_000 }).result;
    expect(result.status).toBe("timeout");
    expect(result.error).toMatchObject({ code: "TIMEOUT", message: "the agent ran longer than 0.2 s" });
  });

  it("stops an agent once its tokens pass the budget, with BUDGET_EXCEEDED", async () => {
    const adapter = fakeAdapter(async (io) => {
      io.emit({ type: "usage", inputTokens: 600, outputTokens: 100 });
      io.emit({ type: "usage", inputTokens: 300, outputTokens: 100 });
      return io.signal.aborted ? "canceled" : "success";
    });
    const result = await supervise(adapter, { ...roomy, budget: { tokens: 1000 } }).result;
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({
      code: "BUDGET_EXCEEDED",
      message: "the agent used 1100 tokens, over its budget of 1000",
    });
    expect(result.totals.inputTokens).toBe(900);
  });

  it("stops an agent once its cost passes a USD budget", async () => {
    const adapter = fakeAdapter(async (io) => {
      io.emit({ type: "usage", model: "claude-opus-4-1", inputTokens: 100_000, outputTokens: 0 });
      return io.signal.aborted ? "canceled" : "success";
    });
    const result = await supervise(adapter, { ...roomy, budget: { usd: 1 } }).result;
    expect(result.error).toMatchObject({
      code: "BUDGET_EXCEEDED",
      message: /\$1\.5000, over its budget of \$1/,
    });
  });

  it("stops a turn whose cost passes what was left of a tenant's budget, naming that budget and its reset", async () => {
    const adapter = fakeAdapter(async (io) => {
      io.emit({ type: "usage", model: "gpt-4.1", inputTokens: 100_000, outputTokens: 0 });
      io.emit({ type: "usage", model: "gpt-4.1", inputTokens: 200_000, outputTokens: 0 });
      return io.signal.aborted ? "canceled" : "success";
    });
    const spendLimit = {
      usd: 0.5,
      budget: "tenant acme's daily budget of $20",
      resets_at: "2026-11-26T00:00:00.000Z",
    };
    const result = await supervise(adapter, { ...roomy, spendLimit }).result;
    expect(result.status).toBe("failed");
    expect(result.error).toMatchObject({
      code: "BUDGET_EXCEEDED",
      message:
        "the turn's spend of $0.6000 took tenant acme's daily budget of $20 past its limit ($0.5000 was left for the turn when it started); it starts again at 2026-11-26T00:00:00.000Z",
    });
  });

  it("lets a turn within what is left of a spend budget end as it ends", async () => {
    const adapter = fakeAdapter(async (io) => {
      io.emit({ type: "usage", model: "gpt-4.1", inputTokens: 100_000, outputTokens: 0 });
      return io.signal.aborted ? "canceled" : "success";
    });
    const spendLimit = { usd: 0.5, budget: "user ana's monthly budget of $5", resets_at: "x" };
    const result = await supervise(adapter, { ...roomy, spendLimit }).result;
    expect(result.status).toBe("success");
    expect(result.totals.costUsd).toBeCloseTo(0.2);
  });

  it("says once that a USD budget cannot hold for a model without a price, and goes on", async () => {
    const adapter = fakeAdapter(async (io) => {
      io.emit({ type: "usage", model: "some-local-model", inputTokens: 10, outputTokens: 1 });
      io.emit({ type: "usage", model: "some-local-model", inputTokens: 10, outputTokens: 1 });
      return "success";
    });
    const { emitted, result } = supervise(adapter, { ...roomy, budget: { usd: 1 } });
    expect((await result).status).toBe("success");
    const said = emitted.filter((o) => o.type === "message" && o.role === "system");
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ text: expect.stringContaining("cannot be enforced") });
  });

  it("cancels the agent when the outer signal aborts, and its report of a crash does not override that", async () => {
    const outer = new AbortController();
    const adapter = fakeAdapter(async (io) => {
      setTimeout(() => outer.abort(), 20);
      await untilAborted(io);
      return "failed";
    });
    const result = await supervise(adapter, roomy, outer.signal).result;
    expect(result.status).toBe("canceled");
    expect(result.error?.code).toBe("CANCELED");
  });

  it("hands an already canceled run an aborted signal", async () => {
    const outer = new AbortController();
    outer.abort();
    const adapter = fakeAdapter(async (io) => (io.signal.aborted ? "canceled" : "success"));
    const result = await supervise(adapter, roomy, outer.signal).result;
    expect(result.status).toBe("canceled");
  });

  it("keeps the adapter's own failure when the supervisor had no reason to stop it", async () => {
    const adapter: AgentAdapter = {
      name: "claude_code",
      credentialEnv: [],
      run: async () => ({
        status: "failed",
        error: { code: "AGENT_AUTH", message: "401" },
        exitCode: 1,
        durationMs: 1,
        memoryPeakBytes: 0,
        cpuMs: 0,
      }),
    };
    const result = await supervise(adapter).result;
    expect(result).toMatchObject({ status: "failed", error: { code: "AGENT_AUTH" }, exitCode: 1 });
  });
});
