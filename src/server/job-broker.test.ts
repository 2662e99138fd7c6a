import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { Job } from "../core/jobs/index.js";
import { silentLogger } from "../core/logger.js";
import { JobBroker } from "./job-broker.js";
import type { RunSink } from "./run-sink.js";

const sqlite = storeBackends.find((backend) => backend.name === "sqlite");

describe("JobBroker relaying reports for an engine on another replica", () => {
  let opened: TestStore;
  beforeEach(async () => {
    opened = await (sqlite ?? storeBackends[0])!.open();
  });
  afterEach(() => opened.dispose());

  it("stores and announces them, and keeps no memory of the jobs it relayed", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "elsewhere" });
    const announced: string[] = [];
    const broker = new JobBroker(
      store,
      { dispatch: () => undefined, cancel: () => false, reported: (_run, jobId) => announced.push(jobId) },
      silentLogger,
    );
    for (let i = 0; i < 50; i++) {
      const id = `job-${i}`;
      await store.jobs.create({ id, run_id: run.id, requirements: { labels: [] }, payload: {} });
      expect(await broker.events(id, 1, [], "runner-1")).toBe("stored");
    }
    expect(announced).toHaveLength(50);
    expect((await store.jobReports.list({})).length).toBe(50);
    // Nothing here waits for these jobs: a replica that relays for others must not grow with them.
    expect((broker as unknown as { unread: Set<string> }).unread.size).toBe(0);
  });

  it("applies a backlog longer than one read in order, then the report after it", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "backlog" });
    const id = "job-backlog";
    await store.jobs.create({ id, run_id: run.id, requirements: { labels: [] }, payload: {} });
    await store.jobs.update(id, { status: "running", runner_id: "runner-1" });
    for (let batch = 1; batch <= 250; batch++)
      await store.jobReports.add({
        job_id: id,
        run_id: run.id,
        kind: "events",
        batch,
        runner_id: "runner-1",
        body: [],
      });
    await store.jobReports.add({
      job_id: id,
      run_id: run.id,
      kind: "lost",
      batch: 0,
      runner_id: "runner-1",
      body: "gone",
    });
    const batches: number[] = [];
    const sink = {
      jobBatch: async (_job: string, batch: number) => batches.push(batch),
      drain: async () => undefined,
    } as unknown as RunSink;
    const broker = new JobBroker(
      store,
      { dispatch: () => undefined, cancel: () => false, reported: () => undefined },
      silentLogger,
    );
    const job = { job_id: id, kind: "step", payload: {} } as unknown as Job;
    const result = await broker.runJob(
      job,
      { runId: run.id, sink, tenantId: null },
      { requirements: { labels: [] }, host: "worker" },
      new AbortController().signal,
    );
    expect(batches).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    expect(result).toMatchObject({ error: { code: "RUNNER_LOST", message: "gone" } });
    // The applied reports are deleted right after the one that settled the job.
    for (let i = 0; i < 100 && (await store.jobReports.jobsWithReports([id])).length > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await store.jobReports.jobsWithReports([id, "job-other"])).toEqual([]);
  });
});
