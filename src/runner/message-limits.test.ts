import { describe, expect, it } from "vitest";
import type { EventInput } from "../core/events.js";
import type { JobResult } from "../core/jobs/index.js";
import { maxRunnerMessageBytes } from "../core/protocol.js";
import { maxFinalTextChars, maxOutputEventChars, outputPieces, resultWithinLimit } from "./message-limits.js";

const output = (data: string): EventInput => ({
  type: "step.output",
  stream: "stdout",
  data,
  step: "s",
  host: "h",
});

const stepResult = (exports: Record<string, string>): JobResult => ({
  kind: "step",
  status: "success",
  exit_code: 0,
  exports,
  duration_ms: 1,
  memory_peak_bytes: 0,
  cpu_ms: 0,
  output_files: [],
  secret_exports: [],
  warnings: [],
});

const size = (result: JobResult) => Buffer.byteLength(JSON.stringify(result));

describe("a runner's messages within the server's limit", () => {
  it("cuts a long output into events of at most 64 KiB, keeping every character whole and in order", () => {
    const data = `${"a".repeat(maxOutputEventChars - 1)}😀${"b".repeat(150_000)}`;
    const pieces = outputPieces(output(data));
    expect(pieces.length).toBe(4);
    for (const piece of pieces) {
      expect(piece.type === "step.output" && piece.data.length).toBeLessThanOrEqual(maxOutputEventChars);
      expect(piece).toMatchObject({ step: "s", host: "h", stream: "stdout" });
    }
    expect(pieces.map((piece) => (piece.type === "step.output" ? piece.data : "")).join("")).toBe(data);
    expect(pieces[0]?.type === "step.output" && pieces[0].data.endsWith("a")).toBe(true);
    expect(outputPieces(output("short"))).toEqual([output("short")]);
  });

  it("fails a step whose exports would make its result larger than the server takes, saying so, and keeps a smaller one", () => {
    const big = stepResult(
      Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`V${i}`, "x".repeat(1024 * 1024)])),
    );
    expect(size(big)).toBeGreaterThan(maxRunnerMessageBytes);
    const within = resultWithinLimit(big, size);
    expect(within).toMatchObject({ status: "failed", exports: {}, error: { code: "EXPORT_TOO_LARGE" } });
    expect(within.error?.message).toBe(
      "the step's exports and warnings are 5.0 MiB as JSON; a step's result may hold at most 4.0 MiB",
    );
    const small = stepResult({ A: "x".repeat(1024 * 1024) });
    expect(resultWithinLimit(small, size)).toBe(small);
  });

  it("cuts an agent's answer too long for its result, saying how long it was", () => {
    const answer = "é".repeat(3 * 1024 * 1024);
    const result: JobResult = {
      kind: "agent",
      status: "success",
      agent: "codex",
      pushed: false,
      usage: { input_tokens: 1, output_tokens: 1 },
      duration_ms: 1,
      memory_peak_bytes: 0,
      cpu_ms: 0,
      final_text: answer,
      artifacts: [],
    } as JobResult;
    const within = resultWithinLimit(result, size);
    expect(size(within)).toBeLessThan(maxRunnerMessageBytes);
    expect(within.kind === "agent" && within.final_text).toBe(
      `${"é".repeat(maxFinalTextChars)}\n[cut: the answer has ${answer.length} characters; the transcript artifact has more]`,
    );
  });
});
