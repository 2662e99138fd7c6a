import { describe, expect, it } from "vitest";
import { RunEvent } from "../../core/events.js";
import type { JobRecord } from "../../store/index.js";
import { stepJobId } from "../job-records.js";
import { RunTraceIds } from "./run-trace-ids.js";
import { RunTraces } from "./run-traces.js";
import type { FinishedSpan, SpanWriter } from "./span-writer.js";

const started = "2026-11-29T10:00:00.000Z";
const finished = "2026-11-29T10:00:02.000Z";

/** The spans of one step attempt of 2 s whose runner reported `result`. */
async function attemptSpans(result: Record<string, unknown>): Promise<FinishedSpan[]> {
  const spans: FinishedSpan[] = [];
  // The attempt's span is written with the runner's part, in one go, once the job is read.
  let attemptWritten: () => void = () => {};
  const written = new Promise<void>((resolve) => {
    attemptWritten = resolve;
  });
  const writer: SpanWriter = {
    sampled: () => true,
    write: (span) => {
      spans.push(span);
      if (span.name === "step build") attemptWritten();
    },
    flush: async () => {},
    close: async () => {},
  };
  const job: JobRecord = {
    id: stepJobId("run_1", "build", "local", 1),
    run_id: "run_1",
    type: "step",
    status: "done",
    requirements: { labels: [], tenant_id: null },
    payload: {},
    result: { kind: "step", status: "success", exit_code: 0, ...result },
    runner_id: "r1",
    lease_expires_at: null,
    last_event_seq: 0,
    refusals: [],
    not_before: null,
    created_at: started,
    updated_at: finished,
  };
  const errors: unknown[] = [];
  const traces = new RunTraces(
    new RunTraceIds(async () => undefined, writer),
    writer,
    { run: async () => undefined, job: async (id) => (id === job.id ? job : undefined) },
    (error) => errors.push(error),
  );
  const step = { run_id: "run_1", step: "build", host: "local" };
  traces.observe([
    RunEvent.parse({ ...step, seq: 1, ts: started, type: "step.started", attempt: 1 }),
    RunEvent.parse({
      ...step,
      seq: 2,
      ts: finished,
      type: "step.finished",
      status: "success",
      exit_code: 0,
      attempts: 1,
      duration_ms: 2000,
    }),
  ]);
  await written;
  expect(errors).toEqual([]);
  return spans;
}

const runnerPart = (spans: FinishedSpan[]) =>
  spans.filter((span) => span.name === "sandbox entry" || span.name === "command");

describe("a step attempt's runner part in its trace", () => {
  it("is entering the sandbox, then the command, from the runner's setup_ms", async () => {
    const spans = runnerPart(await attemptSpans({ duration_ms: 1500, setup_ms: 500 }));
    expect(spans.map((span) => [span.name, span.start.toISOString(), span.end.toISOString()])).toEqual([
      ["sandbox entry", "2026-11-29T10:00:00.500Z", "2026-11-29T10:00:01.000Z"],
      ["command", "2026-11-29T10:00:01.000Z", finished],
    ]);
  });

  it.each([
    { setup_ms: -500, duration_ms: 1500 },
    { setup_ms: -1e16, duration_ms: -1e16 },
    { setup_ms: 1e16, duration_ms: -1e16 },
    { setup_ms: 2000, duration_ms: 1000 },
    { setup_ms: 500 },
  ])("is left out when a runner reports figures no attempt has: %o", async (result) => {
    expect(runnerPart(await attemptSpans(result))).toEqual([]);
  });
});
