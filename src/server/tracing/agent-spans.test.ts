import { describe, expect, it } from "vitest";
import { type AgentSummary, RunEvent } from "../../core/events.js";
import { AgentSpans } from "./agent-spans.js";

const finishedAt = "2026-11-29T10:00:10.000Z";

/** The turn span of an agent whose runner reported `duration_ms` for it, in a run of 10 s. */
function turnSpan(duration_ms: number) {
  const spans = new AgentSpans(
    "run_1",
    { traceId: "a".repeat(32), remoteParent: false, sampled: true },
    undefined,
  );
  const said = RunEvent.parse({
    run_id: "run_1",
    seq: 2,
    ts: "2026-11-29T10:00:01.000Z",
    type: "agent.message",
    agent: "openai",
    role: "assistant",
    text: "hi",
  });
  if (said.type !== "agent.message") throw new Error("not a message");
  spans.observe(said);
  const summary: AgentSummary = {
    agent: "openai",
    status: "success",
    pushed: false,
    input_tokens: 1,
    output_tokens: 1,
    duration_ms,
    memory_peak_bytes: 0,
    cpu_ms: 0,
    artifacts: [],
  };
  const end = RunEvent.parse({
    run_id: "run_1",
    seq: 3,
    ts: finishedAt,
    type: "run.finished",
    status: "success",
    duration_ms: 10_000,
    agents: [summary],
  });
  if (end.type !== "run.finished") throw new Error("not a run's end");
  return spans.finished(end)[0];
}

describe("an agent's turn span", () => {
  it("starts as long before the run's end as the runner says the turn took", () => {
    expect(turnSpan(9500)?.start.toISOString()).toBe("2026-11-29T10:00:00.500Z");
  });

  it.each([-1e16, 1e16, 1e308])("starts at a time an exporter can send when a runner reports %d ms", (ms) => {
    // An invalid time, or one before 1970, fails the OTLP exporter's whole batch.
    const start = turnSpan(ms)?.start.getTime() ?? Number.NaN;
    expect(start).toBeGreaterThanOrEqual(0);
    expect(start).toBeLessThanOrEqual(Date.parse(finishedAt));
  });
});
