import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { UnnumberedEvent } from "../core/events.js";
import type { Job } from "../core/jobs/index.js";
import { silentLogger } from "../core/logger.js";
import type { StepAttemptRequest } from "../core/step-attempt.js";
import type { JobRecord } from "../store/index.js";
import { JobStartOrder } from "./job-start-order.js";

const sqlite = storeBackends.find((backend) => backend.name === "sqlite");

/** A step job of `runId` for `step` on host `worker`, attempt 1, stored. */
async function storedJob(opened: TestStore, runId: string, step: string): Promise<[JobRecord, Job]> {
  const payload = {
    run_id: runId,
    step,
    host: "worker",
    attempt: 1,
    action: "cmd.run",
    script: "true",
    env: {},
  } as unknown as StepAttemptRequest;
  const record = await opened.store.jobs.create({
    id: `job-${step}`,
    run_id: runId,
    requirements: { labels: [] },
    payload,
  });
  return [record, { job_id: record.id, kind: "step", payload }];
}

describe("JobStartOrder", () => {
  let opened: TestStore;
  beforeEach(async () => {
    opened = await (sqlite ?? storeBackends[0])!.open();
  });
  afterEach(() => opened.dispose());

  it("holds a job's output until its step's start is stored, then lets it through", async () => {
    const run = await opened.store.runs.create({ kind: "workflow", name: "held" });
    const [record, job] = await storedJob(opened, run.id, "build");
    const order = new JobStartOrder(opened.store, silentLogger);
    expect(await order.stored(record, job)).toBe(false);
    const ts = new Date().toISOString();
    const start: UnnumberedEvent = { type: "step.started", step: "build", host: "worker", attempt: 1, ts };
    await opened.store.events.appendForRun(run.id, [start]);
    expect(await order.stored(record, job)).toBe(true);
  });

  it("finds a step's start among more than a thousand others of its run", async () => {
    const run = await opened.store.runs.create({ kind: "workflow", name: "wide" });
    const ts = new Date().toISOString();
    const starts: UnnumberedEvent[] = Array.from({ length: 2500 }, (_, index) => ({
      type: "step.started",
      step: `shard-${index}`,
      host: "worker",
      attempt: 1,
      ts,
    }));
    await opened.store.events.appendForRun(run.id, starts);
    const order = new JobStartOrder(opened.store, silentLogger);
    for (const step of ["shard-0", "shard-1200", "shard-2499"]) {
      const [record, job] = await storedJob(opened, run.id, step);
      expect(await order.stored(record, job), step).toBe(true);
    }
  });
});
