import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type EventInput, EventSequencer, type RunEvent } from "../../core/events.js";
import { openMemoryStore } from "../../store/sqlite.js";
import type { RunRecord, Store } from "../../store/types.js";
import { RunProjection } from "./projection.js";

let store: Store;
let record: RunRecord;

beforeEach(async () => {
  store = await openMemoryStore({ warn: () => undefined });
  record = await store.createRun({ kind: "workflow", name: "deploy" });
});

afterEach(async () => {
  await store.close();
});

function events(...inputs: EventInput[]): RunEvent[] {
  const sequencer = new EventSequencer(record.id);
  return inputs.map((input) => sequencer.next(input));
}

describe("RunProjection", () => {
  it("marks the run running on run.started and records the step as it starts and ends", async () => {
    const projection = new RunProjection(store, record);
    await projection.apply(
      events(
        { type: "run.started", name: "deploy" },
        { type: "step.started", step: "build", host: "a", attempt: 1 },
      ),
    );
    expect(await store.getRun(record.id)).toMatchObject({
      status: "running",
      steps: [{ name: "build", host: "a", status: "running", attempts: 1 }],
    });
  });

  it("keeps a finished step's memory and CPU figures", async () => {
    const projection = new RunProjection(store, record);
    await projection.apply(
      events({
        type: "step.finished",
        step: "build",
        host: "a",
        status: "success",
        exit_code: 0,
        attempts: 1,
        duration_ms: 12,
        memory_peak_bytes: 4096,
        cpu_ms: 7,
      }),
    );
    expect((await store.getRun(record.id))?.steps).toEqual([
      {
        name: "build",
        host: "a",
        status: "success",
        exit_code: 0,
        attempts: 1,
        duration_ms: 12,
        memory_peak_bytes: 4096,
        cpu_ms: 7,
      },
    ]);
  });

  it("gathers exported variables, and run.finished decides the final record", async () => {
    const projection = new RunProjection(store, record);
    await projection.apply(events({ type: "vars.exported", step: "build", host: "a", vars: { V: "1" } }));
    expect((await store.getRun(record.id))?.vars).toEqual({ V: "1" });
    await projection.apply(
      events({
        type: "run.finished",
        status: "failed",
        error: { code: "STEP_FAILED", message: "step build failed" },
      }),
    );
    expect(await store.getRun(record.id)).toMatchObject({
      status: "failed",
      vars: { V: "1" },
      error: { code: "STEP_FAILED", message: "step build failed" },
    });
  });
});
