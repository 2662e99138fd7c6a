import { readdirSync, readFileSync } from "node:fs";
import { join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { Job } from "../core/jobs/index.js";
import { silentLogger } from "../core/logger.js";
import type { Store } from "../store/index.js";
import { JobQueue, type RunnerLinks } from "./job-queue.js";
import type { RunSink } from "./run-sink.js";

const sqlite = storeBackends.find((backend) => backend.name === "sqlite");

function queueOn(store: Store, links: Partial<RunnerLinks> = {}): JobQueue {
  const none: RunnerLinks = {
    dispatch: () => undefined,
    cancel: () => false,
    drop: () => undefined,
    reported: () => undefined,
  };
  return new JobQueue({
    store,
    links: { ...none, ...links },
    logger: silentLogger,
    replicaId: "local",
    leaseMs: 60_000,
  });
}

describe("JobQueue relaying reports for an engine on another replica", () => {
  let opened: TestStore;
  beforeEach(async () => {
    opened = await (sqlite ?? storeBackends[0])!.open();
  });
  afterEach(() => opened.dispose());

  it("stores and announces them, and keeps no memory of the jobs it relayed", async () => {
    const { store } = opened;
    const run = await store.runs.create({ kind: "workflow", name: "elsewhere" });
    const announced: string[] = [];
    const broker = queueOn(store, { reported: (_run, jobId) => announced.push(jobId) });
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
    const runner = {
      group: "default",
      labels: [],
      tenant_id: null,
      shared: false,
      isolation: "none",
    } as const;
    await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
    await store.jobs.accept(id, "runner-1");
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
    const broker = queueOn(store);
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

describe("the job queue as the one owner of the job lifecycle", () => {
  it("is the only code outside the store that calls the store's job verbs", () => {
    const verbs = [
      "create",
      "claim",
      "accept",
      "complete",
      "giveBack",
      "refuse",
      "lose",
      "giveUp",
      "cancelQueued",
      "cancel",
      "renewLeases",
      "holdLeases",
    ];
    const call = new RegExp(`store\\s*\\.\\s*jobs\\s*\\.\\s*(${verbs.join("|")})\\s*\\(`);
    const src = fileURLToPath(new URL("..", import.meta.url));
    const callers: string[] = [];
    for (const file of readdirSync(src, { recursive: true, encoding: "utf8" })) {
      if (!file.endsWith(".ts") || file.endsWith(".test.ts") || file.startsWith(`store${sep}`)) continue;
      const lines = readFileSync(join(src, file), "utf8").split("\n");
      lines.forEach((line, index) => {
        if (call.test(line)) callers.push(`${file}:${index + 1}`);
      });
    }
    expect(callers.length).toBeGreaterThan(0);
    expect(callers.filter((caller) => !caller.startsWith(`server${sep}job-queue.ts:`))).toEqual([]);
  });
});
