import { describe, expect, it } from "vitest";
import { EventSequencer } from "./event-sequencer.js";
import { RunEvent } from "./events.js";

describe("event spine", () => {
  it("numbers a run's events 1, 2, 3 and stamps them", () => {
    const seq = new EventSequencer("run_x");
    const a = seq.next({ type: "run.started" });
    const b = seq.next({ type: "notice", level: "info", message: "hi" });
    expect([a.seq, b.seq]).toEqual([1, 2]);
    expect(a.run_id).toBe("run_x");
    expect(Date.parse(a.ts)).not.toBeNaN();
  });

  it("continues numbering after a resumed sequence", () => {
    expect(new EventSequencer("r", 41).next({ type: "run.started" }).seq).toBe(42);
  });

  it("validates events by type and rejects unknown ones", () => {
    const ok = RunEvent.safeParse({
      run_id: "r",
      seq: 1,
      ts: new Date().toISOString(),
      type: "step.output",
      step: "s",
      host: "h",
      stream: "stdout",
      data: "x",
    });
    expect(ok.success).toBe(true);
    const bad = RunEvent.safeParse({ run_id: "r", seq: 1, ts: "t", type: "step.exploded" });
    expect(bad.success).toBe(false);
  });
});
