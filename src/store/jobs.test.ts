import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { ClaimingRunner, JobRecord, JobRequirements } from "./job-records.js";
import type { Store } from "./types.js";

let store: Store;
let clock: Date;
let runId: string;
let order: number;

/** Why a job in these tests was lost, as the server stores it. */
const loss = { message: "runner r1 stopped heartbeating", taken_up: true };
describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;

  beforeEach(async () => {
    clock = new Date("2026-01-01T00:00:00.000Z");
    order = 0;
    opened = await backend.open({ now: () => clock });
    store = opened.store;
    runId = (await store.runs.create({ kind: "workflow", name: "deploy" })).id;
  });

  afterEach(() => opened.dispose());

  const plain: ClaimingRunner = {
    id: "runner-plain",
    group: "default",
    labels: [],
    tenant_id: null,
    shared: false,
    isolation: "none",
  };

  function runner(overrides: Partial<ClaimingRunner>): ClaimingRunner {
    return { ...plain, ...overrides };
  }

  async function queue(requirements: JobRequirements, name = `job-${order}`): Promise<JobRecord> {
    order += 1;
    return store.jobs.create({
      id: name,
      run_id: runId,
      requirements,
      payload: { step: name },
      created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, order)).toISOString(),
    });
  }

  describe("createJob", () => {
    it("queues a step job with its requirements and payload", async () => {
      const job = await store.jobs.create({
        run_id: runId,
        requirements: { group: "gpu", labels: ["cuda", "linux", "cuda"], tenant_id: "acme" },
        payload: { script: "nvidia-smi" },
      });
      expect(job).toEqual({
        id: expect.stringMatching(/^job_/),
        run_id: runId,
        type: "step",
        status: "queued",
        requirements: { group: "gpu", labels: ["cuda", "linux"], tenant_id: "acme" },
        payload: { script: "nvidia-smi" },
        result: null,
        runner_id: null,
        lease_expires_at: null,
        last_event_seq: 0,
        refusals: [],
        not_before: null,
        created_at: "2026-01-01T00:00:00.000Z",
        updated_at: "2026-01-01T00:00:00.000Z",
      });
      expect(await store.jobs.get(job.id)).toEqual(job);
    });

    it("answers CONFLICT for a job id that is taken", async () => {
      await queue({ labels: [] }, "same");
      await expect(queue({ labels: [] }, "same")).rejects.toMatchObject({ code: "CONFLICT" });
    });
  });

  describe("claimJob", () => {
    it("assigns the oldest queued job to the runner with a lease", async () => {
      const first = await queue({ labels: [] });
      await queue({ labels: [] });
      const claimed = await store.jobs.claim(plain, 30_000);
      expect(claimed).toMatchObject({
        id: first.id,
        status: "assigned",
        runner_id: "runner-plain",
        lease_expires_at: "2026-01-01T00:00:30.000Z",
      });
      expect(await store.jobs.get(first.id)).toEqual(claimed);
    });

    it("gives each job out once, then nothing", async () => {
      await queue({ labels: [] });
      await queue({ labels: [] });
      const a = await store.jobs.claim(plain, 1000);
      const b = await store.jobs.claim(plain, 1000);
      expect(a?.id).not.toBe(b?.id);
      expect(await store.jobs.claim(plain, 1000)).toBeUndefined();
    });

    it("says whether another job waited for the runner as it claimed, by the runner's own placement", async () => {
      await queue({ labels: [] });
      await queue({ labels: ["gpu"] });
      await queue({ group: "other", labels: [] });
      await queue({ labels: [], tenant_id: "acme" });
      await queue({ labels: [] });
      // Two for the plain runner: the first claim knows of the second, the second of none (the
      // others need a label, a group or a tenant it does not have).
      expect(await store.jobs.claimNext(plain, 1000)).toMatchObject({ job: { id: "job-0" }, more: true });
      expect(await store.jobs.claimNext(plain, 1000)).toMatchObject({ job: { id: "job-4" }, more: false });
      expect(await store.jobs.claimNext(plain, 1000)).toBeUndefined();
      expect(await store.jobs.claimNext(runner({ labels: ["gpu"] }), 1000)).toMatchObject({
        job: { id: "job-1" },
        more: false,
      });
      // A job waiting out a refusal's back-off is not one it could take now.
      const later = await queue({ labels: [] });
      await queue({ labels: [] });
      await store.jobs.claim(plain, 1000);
      await store.jobs.refuse(later.id, "runner-plain", [], new Date(clock.getTime() + 60_000));
      expect(await store.jobs.claimNext(plain, 1000)).toMatchObject({ job: { id: "job-6" }, more: false });
    });

    it("routes by group: a job of a group goes only to that group's runners", async () => {
      const gpu = await queue({ group: "gpu", labels: [] });
      expect(await store.jobs.claim(runner({ group: "default" }), 1000)).toBeUndefined();
      expect((await store.jobs.claim(runner({ group: "gpu" }), 1000))?.id).toBe(gpu.id);
      const anyGroup = await queue({ labels: [] });
      expect((await store.jobs.claim(runner({ group: "gpu" }), 1000))?.id).toBe(anyGroup.id);
    });

    it("routes by labels: the runner must have every label of the job", async () => {
      const job = await queue({ labels: ["linux", "docker"] });
      expect(await store.jobs.claim(runner({ labels: [] }), 1000)).toBeUndefined();
      expect(await store.jobs.claim(runner({ labels: ["linux"] }), 1000)).toBeUndefined();
      expect(await store.jobs.claim(runner({ labels: ["docker", "arm64"] }), 1000)).toBeUndefined();
      expect((await store.jobs.claim(runner({ labels: ["arm64", "docker", "linux"] }), 1000))?.id).toBe(
        job.id,
      );
    });

    it("a runner of a tenant takes that tenant's jobs only, never one outside every tenant", async () => {
      const platformJob = await queue({ labels: [] });
      const acmeJob = await queue({ labels: [], tenant_id: "acme" });
      const acme = runner({ tenant_id: "acme" });
      expect(await store.jobs.claim(runner({ tenant_id: "globex" }), 1000)).toBeUndefined();
      expect((await store.jobs.claim(acme, 1000))?.id).toBe(acmeJob.id);
      expect(await store.jobs.claim(acme, 1000)).toBeUndefined();
      // Neither a shared flag nor isolation lets a tenant's runner take the platform's job.
      expect(
        await store.jobs.claim(runner({ tenant_id: "acme", shared: true, isolation: "sandbox" }), 1000),
      ).toBeUndefined();
      expect((await store.jobs.get(platformJob.id))?.status).toBe("queued");
    });

    it("a runner outside every tenant that is not shared takes only jobs outside every tenant", async () => {
      await queue({ labels: [], tenant_id: "acme" });
      const platformJob = await queue({ labels: [] });
      const isolating = runner({ isolation: "sandbox" });
      expect((await store.jobs.claim(isolating, 1000))?.id).toBe(platformJob.id);
      expect(await store.jobs.claim(isolating, 1000)).toBeUndefined();
    });

    it("a shared runner that isolates takes jobs outside every tenant and of any tenant", async () => {
      const acmeJob = await queue({ labels: [], tenant_id: "acme" });
      const platformJob = await queue({ labels: [] });
      const globexJob = await queue({ labels: [], tenant_id: "globex" });
      const shared = runner({ shared: true, isolation: "sandbox" });
      expect((await store.jobs.claim(shared, 1000))?.id).toBe(acmeJob.id);
      expect((await store.jobs.claim(shared, 1000))?.id).toBe(platformJob.id);
      expect((await store.jobs.claim(runner({ shared: true, isolation: "docker" }), 1000))?.id).toBe(
        globexJob.id,
      );
    });

    it("a runner marked shared that does not isolate takes no tenant's job", async () => {
      await queue({ labels: [], tenant_id: "acme" });
      expect(await store.jobs.claim(runner({ shared: true, isolation: "none" }), 1000)).toBeUndefined();
    });

    it("passes over older jobs the runner cannot take", async () => {
      await queue({ labels: ["windows"] });
      await queue({ group: "gpu", labels: [] });
      const fits = await queue({ labels: ["linux"] });
      expect((await store.jobs.claim(runner({ labels: ["linux"] }), 1000))?.id).toBe(fits.id);
    });

    it("never takes a job that is not queued", async () => {
      const job = await queue({ labels: [] });
      await store.jobs.cancelQueued(job.id, null);
      expect(await store.jobs.claim(plain, 1000)).toBeUndefined();
    });

    it("never gives one job to two claimers using two store instances on the same database", async () => {
      const other = await opened.reopen({});
      try {
        for (let i = 0; i < 40; i++) await queue({ labels: [] });
        const claims: Promise<JobRecord | undefined>[] = [];
        for (let i = 0; i < 30; i++) {
          claims.push(store.jobs.claim(runner({ id: "runner-a" }), 60_000));
          claims.push(other.jobs.claim(runner({ id: "runner-b" }), 60_000));
        }
        const claimed = (await Promise.all(claims)).filter((job) => job !== undefined);

        const ids = claimed.map((job) => job.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect(ids).toHaveLength(40);
        expect(claimed.some((job) => job.runner_id === "runner-a")).toBe(true);
        expect(claimed.some((job) => job.runner_id === "runner-b")).toBe(true);
        for (const job of claimed) expect((await other.jobs.get(job.id))?.runner_id).toBe(job.runner_id);
      } finally {
        await other.close();
      }
    });
    it("claims for a replica only while the runner is recorded as connected to it", async () => {
      const job = await queue({ labels: [] });
      const mover = { id: "runner-mover", group: "default", labels: [], mode: "all", capacity: 1 };
      await store.runners.upsert({ ...mover, tenant_id: null, hostname: "h", version: "0", replica_id: "b" });
      expect(await store.jobs.claim(runner({ id: "runner-mover", replica_id: "a" }), 1000)).toBeUndefined();
      expect((await store.jobs.get(job.id))?.status).toBe("queued");
      expect((await store.jobs.claim(runner({ id: "runner-mover", replica_id: "b" }), 1000))?.id).toBe(
        job.id,
      );
    });
  });

  describe("refuseJob", () => {
    it("queues a refused job again, held back from every runner until its back-off ends", async () => {
      const job = await queue({ labels: [] });
      await store.jobs.claim(runner({ id: "r1" }), 30_000);
      const refused = await store.jobs.refuse(
        job.id,
        "r1",
        [{ runner_id: "r1", reason: "cannot run bot jobs" }],
        new Date("2026-01-01T00:00:02.000Z"),
      );
      expect(refused).toMatchObject({
        status: "queued",
        runner_id: null,
        lease_expires_at: null,
        refusals: [{ runner_id: "r1", reason: "cannot run bot jobs" }],
        not_before: "2026-01-01T00:00:02.000Z",
      });
      expect(await store.jobs.claim(runner({ id: "r2" }), 1000)).toBeUndefined();
      // What a restarted server arms a timer for (JobQueue.offerAfterBackoffs).
      expect(await store.jobs.nextBackoffEnd()).toEqual(new Date("2026-01-01T00:00:02.000Z"));
      clock = new Date("2026-01-01T00:00:02.000Z");
      expect(await store.jobs.nextBackoffEnd()).toBeUndefined();
      expect(await store.jobs.claim(runner({ id: "r2" }), 1000)).toMatchObject({
        id: job.id,
        runner_id: "r2",
      });
    });

    it("refuses nothing for a runner the job is not assigned to, or once it was accepted", async () => {
      const job = await queue({ labels: [] });
      const refusal = [{ runner_id: "r2", reason: "no" }];
      expect(await store.jobs.refuse(job.id, "r2", refusal, clock)).toBeUndefined();
      await store.jobs.claim(runner({ id: "r1" }), 30_000);
      expect(await store.jobs.refuse(job.id, "r2", refusal, clock)).toBeUndefined();
      await store.jobs.accept(job.id, "r1");
      expect(await store.jobs.refuse(job.id, "r1", refusal, clock)).toBeUndefined();
      expect(await store.jobs.get(job.id)).toMatchObject({ status: "running", refusals: [] });
    });

    it("offers a runner only the kinds it handles", async () => {
      const step = await queue({ labels: [] });
      const bot = await store.jobs.create({
        id: "bot-job",
        run_id: runId,
        type: "bot",
        requirements: { labels: [] },
        payload: null,
        created_at: "2025-12-31T00:00:00.000Z",
      });
      expect(await store.jobs.claim(runner({ onlyTypes: ["step", "agent"] }), 1000)).toMatchObject({
        id: step.id,
      });
      expect(await store.jobs.claim(runner({ onlyTypes: ["step", "agent"] }), 1000)).toBeUndefined();
      expect(await store.jobs.claim(runner({ onlyTypes: ["bot"] }), 1000)).toMatchObject({ id: bot.id });
    });
  });

  describe("leases", () => {
    it("renews only the listed jobs when given, and nothing for an empty list", async () => {
      const held = await queue({ labels: [] });
      const phantom = await queue({ labels: [] });
      for (let i = 0; i < 2; i++) await store.jobs.claim(runner({ id: "r1" }), 10_000);
      clock = new Date("2026-01-01T00:00:05.000Z");
      expect(await store.jobs.renewLeases("r1", 10_000, [])).toEqual([]);
      expect(await store.jobs.renewLeases("r1", 10_000, [held.id])).toEqual([held.id]);
      expect((await store.jobs.get(held.id))?.lease_expires_at).toBe("2026-01-01T00:00:15.000Z");
      expect((await store.jobs.get(phantom.id))?.lease_expires_at).toBe("2026-01-01T00:00:10.000Z");
    });

    it("renews the leases of a runner's assigned and running jobs only", async () => {
      const assigned = await queue({ labels: [] });
      const running = await queue({ labels: [] });
      const done = await queue({ labels: [] });
      const others = await queue({ labels: [] });
      for (let i = 0; i < 3; i++) await store.jobs.claim(runner({ id: "r1" }), 10_000);
      await store.jobs.claim(runner({ id: "r2" }), 10_000);
      await store.jobs.accept(running.id, "r1");
      await store.jobs.complete(done.id, "r1", { status: "success" });

      clock = new Date("2026-01-01T00:00:05.000Z");
      expect(await store.jobs.renewLeases("r1", 10_000)).toEqual([assigned.id, running.id].sort());
      expect((await store.jobs.get(assigned.id))?.lease_expires_at).toBe("2026-01-01T00:00:15.000Z");
      expect((await store.jobs.get(running.id))?.lease_expires_at).toBe("2026-01-01T00:00:15.000Z");
      expect((await store.jobs.get(done.id))?.lease_expires_at).toBeNull();
      expect((await store.jobs.get(others.id))?.lease_expires_at).toBe("2026-01-01T00:00:10.000Z");
    });

    it("lists the assigned and running jobs whose lease has ended", async () => {
      const early = await queue({ labels: [] });
      const late = await queue({ labels: [] });
      await store.jobs.claim(runner({ id: "r1" }), 5_000);
      await store.jobs.claim(runner({ id: "r1" }), 20_000);
      await store.jobs.accept(late.id, "r1");

      expect(await store.jobs.expired("2026-01-01T00:00:04.999Z")).toEqual([]);
      expect((await store.jobs.expired("2026-01-01T00:00:06Z")).map((job) => job.id)).toEqual([early.id]);
      clock = new Date("2026-01-01T00:01:00.000Z");
      expect((await store.jobs.expired()).map((job) => job.id)).toEqual([early.id, late.id]);
      await store.jobs.lose(early.id, "r1", loss);
      expect((await store.jobs.expired()).map((job) => job.id)).toEqual([late.id]);
    });

    it("lets a job whose lease ended be queued again and claimed by another runner", async () => {
      const job = await queue({ labels: [] });
      await store.jobs.claim(runner({ id: "r1" }), 1000);
      clock = new Date("2026-01-01T00:00:02.000Z");
      const [expired] = await store.jobs.expired();
      expect(expired?.id).toBe(job.id);
      await store.jobs.giveBack(job.id, "r1");
      expect(await store.jobs.expired()).toEqual([]);
      expect(await store.jobs.claim(runner({ id: "r2" }), 1000)).toMatchObject({
        id: job.id,
        runner_id: "r2",
      });
    });
  });

  describe("transitions", () => {
    const result = { status: "success", exit_code: 0 };

    async function claimed(runnerId = "r1"): Promise<JobRecord> {
      const job = await queue({ labels: [] });
      const claim = await store.jobs.claim(runner({ id: runnerId }), 10_000);
      expect(claim?.id).toBe(job.id);
      return claim as JobRecord;
    }

    it("acceptJob starts an assigned job for the runner holding it, once", async () => {
      const job = await claimed();
      expect(await store.jobs.accept(job.id, "r2")).toBeUndefined();
      clock = new Date("2026-01-01T00:00:03.000Z");
      expect(await store.jobs.accept(job.id, "r1")).toMatchObject({
        status: "running",
        runner_id: "r1",
        updated_at: "2026-01-01T00:00:03.000Z",
      });
      expect(await store.jobs.accept(job.id, "r1")).toBeUndefined();
    });

    it("completeJob stores the result of the runner holding the job, and only while it holds it", async () => {
      const job = await claimed();
      await store.jobs.accept(job.id, "r1");
      expect(await store.jobs.complete(job.id, "r2", result)).toBeUndefined();
      expect(await store.jobs.complete(job.id, "r1", result)).toMatchObject({
        status: "done",
        result,
        lease_expires_at: null,
      });
      expect(await store.jobs.get(job.id)).toMatchObject({ status: "done", result });
      const lost = await claimed();
      await store.jobs.lose(lost.id, "r1", loss);
      expect(await store.jobs.complete(lost.id, "r1", result)).toBeUndefined();
      expect(await store.jobs.get(lost.id)).toMatchObject({ status: "lost", result: loss });
    });

    it("completeJob with a count of batches stores the result only once that many batches are stored", async () => {
      const job = await claimed();
      await store.jobs.accept(job.id, "r1");
      const run_id = job.run_id;
      await store.events.appendForRun(run_id, [], { job: { id: job.id, seq: 1, runnerId: "r1" } });
      expect(await store.jobs.complete(job.id, "r1", result, 2)).toBeUndefined();
      expect(await store.jobs.get(job.id)).toMatchObject({ status: "running", last_event_seq: 1 });
      await store.events.appendForRun(run_id, [], { job: { id: job.id, seq: 2, runnerId: "r1" } });
      expect(await store.jobs.complete(job.id, "r1", result, 2)).toMatchObject({ status: "done", result });
    });

    it("returnJob queues an unstarted job again for any runner, but not one its runner accepted", async () => {
      const job = await claimed();
      expect(await store.jobs.giveBack(job.id, "r2")).toBeUndefined();
      expect(await store.jobs.giveBack(job.id, "r1")).toMatchObject({
        status: "queued",
        runner_id: null,
        lease_expires_at: null,
      });
      expect(await store.jobs.claim(runner({ id: "r2" }), 1000)).toMatchObject({
        id: job.id,
        runner_id: "r2",
      });
      await store.jobs.accept(job.id, "r2");
      expect(await store.jobs.giveBack(job.id, "r2")).toBeUndefined();
    });

    it("loseJob ends an assigned or running job as lost, and never a finished one", async () => {
      const assigned = await claimed();
      const running = await claimed();
      await store.jobs.accept(running.id, "r1");
      const done = await claimed();
      await store.jobs.complete(done.id, "r1", result);
      expect(await store.jobs.lose(assigned.id, "r1", loss)).toMatchObject({
        status: "lost",
        lease_expires_at: null,
      });
      expect(await store.jobs.lose(running.id, "r1", loss)).toMatchObject({
        status: "lost",
        runner_id: "r1",
      });
      expect(await store.jobs.lose(done.id, "r1", loss)).toBeUndefined();
      expect(await store.jobs.lose(assigned.id, "r1", loss)).toBeUndefined();
    });

    it("loseJob leaves a job alone that another runner holds since the caller read it", async () => {
      const job = await claimed();
      await store.jobs.giveBack(job.id, "r1");
      expect((await store.jobs.claim(runner({ id: "r2" }), 10_000))?.id).toBe(job.id);
      expect(await store.jobs.lose(job.id, "r1", loss)).toBeUndefined();
      expect(await store.jobs.get(job.id)).toMatchObject({ status: "assigned", runner_id: "r2" });
    });

    it("giveUpJob ends a job its runner still holds unstarted with the given result", async () => {
      const job = await claimed();
      const refused = { status: "failed", error: { code: "JOB_REFUSED" } };
      expect(await store.jobs.giveUp(job.id, "r2", refused)).toBeUndefined();
      expect(await store.jobs.giveUp(job.id, "r1", refused)).toMatchObject({
        status: "done",
        result: refused,
      });
      const running = await claimed();
      await store.jobs.accept(running.id, "r1");
      expect(await store.jobs.giveUp(running.id, "r1", refused)).toBeUndefined();
    });

    it("cancelQueuedJob ends only a job no runner has claimed", async () => {
      const queued = await queue({ labels: [] });
      const canceled = { status: "canceled" };
      expect(await store.jobs.cancelQueued(queued.id, canceled)).toMatchObject({
        status: "done",
        result: canceled,
      });
      const job = await claimed();
      expect(await store.jobs.cancelQueued(job.id, canceled)).toBeUndefined();
      expect((await store.jobs.get(job.id))?.status).toBe("assigned");
    });

    it("cancelJob ends a queued, assigned or running job, and never one that ended", async () => {
      const canceled = { status: "canceled" };
      const queued = await store.jobs.create({
        run_id: runId,
        requirements: { labels: ["nobody"] },
        payload: {},
      });
      const assigned = await claimed();
      const running = await claimed();
      await store.jobs.accept(running.id, "r1");
      for (const job of [queued, assigned, running])
        expect(await store.jobs.cancel(job.id, canceled)).toMatchObject({
          status: "done",
          result: canceled,
          lease_expires_at: null,
        });
      const lost = await claimed();
      await store.jobs.lose(lost.id, "r1", loss);
      expect(await store.jobs.cancel(lost.id, canceled)).toBeUndefined();
      expect(await store.jobs.cancel(running.id, { other: true })).toBeUndefined();
      expect(await store.jobs.cancel("job_nope", canceled)).toBeUndefined();
    });

    it("holdLeases gives the leased jobs of the named runs a new deadline, and no others", async () => {
      const otherRun = (await store.runs.create({ kind: "workflow", name: "other" })).id;
      const mine = await claimed();
      const theirs = await store.jobs.create({ run_id: otherRun, requirements: { labels: [] }, payload: {} });
      await store.jobs.claim(runner({ id: "r1" }), 10_000);
      const until = new Date("2026-01-01T00:05:00.000Z");
      expect(await store.jobs.holdLeases([runId], until)).toEqual([mine.id]);
      expect((await store.jobs.get(mine.id))?.lease_expires_at).toBe("2026-01-01T00:05:00.000Z");
      expect((await store.jobs.get(theirs.id))?.lease_expires_at).toBe("2026-01-01T00:00:10.000Z");
      expect(await store.jobs.holdLeases([], until)).toEqual([]);
    });
  });

  describe("listJobs", () => {
    it("filters jobs by runner, run and status, oldest first", async () => {
      const otherRun = (await store.runs.create({ kind: "workflow", name: "other" })).id;
      const a = await queue({ labels: [] });
      const b = await queue({ labels: [] });
      const c = await store.jobs.create({
        run_id: otherRun,
        requirements: { labels: [] },
        payload: null,
        created_at: "2026-01-02T00:00:00.000Z",
      });
      await store.jobs.claim(runner({ id: "r1" }), 1000);

      const ids = async (query: Parameters<Store["jobs"]["list"]>[0]) =>
        (await store.jobs.list(query)).map((job) => job.id);
      expect(await ids({})).toEqual([a.id, b.id, c.id]);
      expect(await ids({ runnerId: "r1" })).toEqual([a.id]);
      expect(await ids({ runId })).toEqual([a.id, b.id]);
      expect(await ids({ statuses: ["queued"] })).toEqual([b.id, c.id]);
      expect(await ids({ runId, statuses: ["queued"] })).toEqual([b.id]);
      expect(await ids({ statuses: [] })).toEqual([]);
    });
  });

  describe("jobQueue", () => {
    it("counts queued jobs and gives the oldest one's creation time", async () => {
      expect(await store.jobs.queue()).toEqual({ queued: 0, oldest_created_at: null });
      await queue({ labels: [] });
      const second = await queue({ labels: [] });
      await queue({ labels: [] });
      // The oldest is claimed: it waits no more.
      await store.jobs.claim(plain, 1000);
      expect(await store.jobs.queue()).toEqual({ queued: 2, oldest_created_at: second.created_at });
    });
  });
});
