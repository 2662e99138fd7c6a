import pg from "pg";
import { expect, type MockInstance, vi } from "vitest";
import type { RunEvent, UnnumberedEvent } from "../../src/core/events.js";

/*
 * What the tests of a run's events appended to the store share (src/store/append-*.test.ts,
 * test/append-one-statement-attacks.test.ts, test/runner-batch-attacks.test.ts): events as a
 * runner sends them, and checks of what the store kept.
 */

export const ts = "2026-01-01T00:00:00.000Z";

export function output(data: string, step = "build", host = "local"): UnnumberedEvent {
  return { ts, type: "step.output", step, host, stream: "stdout", data };
}

export const stepFinished = (step = "build", host = "local"): UnnumberedEvent => ({
  ts,
  type: "step.finished",
  step,
  host,
  status: "success",
  exit_code: 0,
  attempts: 1,
  duration_ms: 1,
});

export function outputBytes(events: readonly RunEvent[]): number {
  let bytes = 0;
  for (const event of events) {
    if (event.type === "step.output") bytes += Buffer.byteLength(event.data, "utf8");
    if (event.type === "notice" && event.step !== undefined && !event.message.includes("reached its cap"))
      bytes += Buffer.byteLength(event.message, "utf8");
  }
  return bytes;
}

/** The run's events are 1..n, with no gap and no seq twice. */
export function expectContiguous(events: readonly RunEvent[]): void {
  expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
}

/** Statements sent with the one-statement append's text, and whether each wrote the batch. */
export function knownStatementSpy(): { spy: MockInstance; took(): Promise<boolean[]> } {
  const spy = vi.spyOn(pg.Client.prototype, "query");
  return {
    spy,
    async took() {
      const taken: boolean[] = [];
      for (const [i, call] of spy.mock.calls.entries()) {
        const first = call[0] as string | { text?: string };
        const text = typeof first === "string" ? first : (first?.text ?? "");
        if (!text.includes("a batch on the run's known state")) continue;
        const result = (await Promise.resolve(spy.mock.results[i]?.value).catch(() => undefined)) as
          | { rowCount?: number }
          | undefined;
        taken.push((result?.rowCount ?? 0) > 0);
      }
      return taken;
    },
  };
}
