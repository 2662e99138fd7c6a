import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventSequencer } from "../../core/event-sequencer.js";
import type { EventInput, RunEvent } from "../../core/events.js";
import type { RunRecord, Store } from "../../store/index.js";
import { openMemoryStore } from "../../store/sqlite.js";
import { RunProjection } from "./projection.js";

let store: Store;
let record: RunRecord;

beforeEach(async () => {
  store = await openMemoryStore({ warn: () => undefined });
  record = await store.runs.create({ kind: "workflow", name: "deploy" });
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
    expect(await store.runs.get(record.id)).toMatchObject({
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
    expect((await store.runs.get(record.id))?.steps).toEqual([
      {
        name: "build",
        host: "a",
        status: "success",
        exit_code: 0,
        attempts: 1,
        duration_ms: 12,
        memory_peak_bytes: 4096,
        cpu_ms: 7,
        ended_at: expect.any(String),
      },
    ]);
  });

  it("keeps when each step started and ended, why one was skipped and the run one was kept from, also past the engine's own summaries at the end", async () => {
    const projection = new RunProjection(store, record);
    const told = events(
      { type: "run.started", name: "deploy" },
      {
        type: "step.finished",
        step: "build",
        host: "a",
        status: "success",
        exit_code: 0,
        attempts: 1,
        duration_ms: 5,
        kept_from: "run_first",
      },
      { type: "step.started", step: "test", host: "a", attempt: 1 },
      { type: "step.retrying", step: "test", host: "a", attempt: 1, exit_code: 1, delay_ms: 0 },
      { type: "step.started", step: "test", host: "a", attempt: 2 },
      {
        type: "step.finished",
        step: "test",
        host: "a",
        status: "failed",
        exit_code: 1,
        attempts: 2,
        duration_ms: 9,
      },
      {
        type: "step.finished",
        step: "deploy",
        host: "a",
        status: "skipped",
        exit_code: null,
        attempts: 0,
        duration_ms: 0,
        reason: 'dependency "test" failed',
      },
    );
    const [firstStart, secondStart, testEnd] = [told[2]!.ts, told[4]!.ts, told[5]!.ts];
    await projection.apply(told);
    const expected = [
      { name: "build", kept_from: "run_first", ended_at: told[1]!.ts },
      { name: "test", started_at: firstStart, ended_at: testEnd },
      { name: "deploy", reason: 'dependency "test" failed' },
    ];
    expect((await store.runs.get(record.id))?.steps).toMatchObject(expected);
    expect(secondStart >= firstStart).toBe(true);
    // The engine's summaries at the end know none of these: the record keeps them all the same.
    const bare = (name: string, status: "success" | "failed" | "skipped") => ({
      name,
      host: "a",
      status,
      exit_code: null,
      attempts: 1,
    });
    await projection.apply(
      events({
        type: "run.finished",
        status: "failed",
        steps: [bare("build", "success"), bare("test", "failed"), bare("deploy", "skipped")],
      }),
    );
    expect((await store.runs.get(record.id))?.steps).toMatchObject(expected);
  });

  it("gathers exported variables, and run.finished decides the final record", async () => {
    const projection = new RunProjection(store, record);
    await projection.apply(events({ type: "vars.exported", step: "build", host: "a", vars: { V: "1" } }));
    expect((await store.runs.get(record.id))?.vars).toEqual({ V: "1" });
    await projection.apply(
      events({
        type: "run.finished",
        status: "failed",
        error: { code: "STEP_FAILED", message: "step build failed" },
      }),
    );
    expect(await store.runs.get(record.id)).toMatchObject({
      status: "failed",
      vars: { V: "1" },
      error: { code: "STEP_FAILED", message: "step build failed" },
    });
  });

  it("says what a batch changes on the record without changing anything, so that it is stored with the batch", async () => {
    const projection = new RunProjection(store, record);
    const batch = events(
      { type: "run.started", name: "deploy" },
      { type: "step.started", step: "build", host: "a", attempt: 1 },
      { type: "vars.exported", step: "build", host: "a", vars: { V: "1" } },
    );
    const change = projection.recordChange(batch);
    expect(change).toEqual({
      startedAt: batch[0]?.ts,
      patch: {
        vars: { V: "1" },
        steps: [
          {
            name: "build",
            host: "a",
            status: "running",
            exit_code: null,
            attempts: 1,
            started_at: batch[1]?.ts,
          },
        ],
      },
    });
    // Asked again, it says the same: asking changed nothing, and nothing was written.
    expect(projection.recordChange(batch)).toEqual(change);
    expect(await store.runs.get(record.id)).toMatchObject({ status: "queued", steps: [], vars: {} });
    // Stored with the batch: applying it writes nothing more, and the next batch goes on from it.
    await store.events.appendForRun(record.id, batch, change ? { record: change } : {});
    await projection.apply(batch, true);
    const end = events({ type: "run.finished", status: "success" });
    expect(projection.recordChange(end)?.patch).toMatchObject({
      status: "success",
      vars: { V: "1" },
      steps: [{ name: "build", status: "running" }],
    });
    expect(
      projection.recordChange(
        events({ type: "step.output", step: "build", host: "a", stream: "stdout", data: "x" }),
      ),
    ).toBeUndefined();
  });

  it("moves only its own run's bot: a bot.state naming another bot (another tenant's) changes nothing", async () => {
    const expires_at = new Date(Date.now() + 60_000).toISOString();
    const mine = await store.bots.create({
      tenant_id: "acme",
      owner: "u1",
      name: "mine",
      mode: "image",
      spec: {},
      state: "pulling",
      expires_at,
    });
    const theirs = await store.bots.create({
      tenant_id: "globex",
      owner: "u2",
      name: "theirs",
      mode: "image",
      spec: {},
      state: "running",
      expires_at,
    });
    const botRun = await store.runs.create({ kind: "bot", name: "bot mine", spec: { bot_id: mine.id } });
    const sequencer = new EventSequencer(botRun.id);
    // What a runner holding `mine`'s job (or any job) could report.
    await new RunProjection(store, botRun).apply([
      sequencer.next({ type: "bot.state", bot_id: theirs.id, state: "crashed", last_logs: ["forged"] }),
      sequencer.next({ type: "bot.state", bot_id: mine.id, state: "running" }),
    ]);
    expect(await store.bots.get(theirs.id)).toMatchObject({ state: "running", last_logs: null });
    expect((await store.bots.get(mine.id))?.state).toBe("running");
    // Nor can a workflow's job speak for a bot.
    const workflowRun = new EventSequencer(record.id);
    await new RunProjection(store, record).apply([
      workflowRun.next({ type: "bot.state", bot_id: theirs.id, state: "stopped" }),
    ]);
    expect((await store.bots.get(theirs.id))?.state).toBe("running");
  });
});
