import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { silentLogger } from "../core/logger.js";
import { EventBus } from "./event-bus.js";
import { JobQueue } from "./job-queue.js";

const runner = { group: "default", labels: [], tenant_id: null, shared: false, isolation: "none" } as const;

describe("a job its runner refused", () => {
  let opened: TestStore;
  let queue: JobQueue | undefined;
  beforeEach(async () => {
    opened = await storeBackends.find((backend) => backend.name === "sqlite")!.open();
  });
  afterEach(() => {
    queue?.stop();
    return opened.dispose();
  });

  it("is offered to every replica's runners once its back-off is over, so that a runner elsewhere that found nothing claims it", async () => {
    const { store } = opened;
    // Each offer the queue makes through its links: the hub here and, in a fleet, the other replicas.
    const offers: number[] = [];
    let offered: () => void = () => undefined;
    queue = new JobQueue({
      store,
      bus: new EventBus(),
      links: {
        dispatch: () => {
          offers.push(Date.now());
          offered();
        },
        cancel: () => false,
        drop: () => undefined,
        jobChanged: () => undefined,
      },
      logger: silentLogger,
      replicaId: "local",
      leaseMs: 60_000,
    });
    const run = await store.runs.create({ kind: "workflow", name: "refused" });
    const payload = {
      run_id: run.id,
      step: "s",
      host: "worker",
      attempt: 1,
      action: "cmd.run",
      script: "true",
      env: {},
    };
    await store.jobs.create({ id: "job-refused", run_id: run.id, requirements: { labels: [] }, payload });
    await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
    const refusedAt = Date.now();
    const backOffOver = new Promise<void>((resolve) => {
      offered = resolve;
    });
    const outcome = await queue.refused("job-refused", "runner-1", "its Docker engine is gone");
    expect(outcome).toEqual({ retryInMs: 1000 });
    // Runner 2, on another replica, asks now: the job waits out its back-off.
    expect(await store.jobs.claim({ id: "runner-2", ...runner }, 60_000)).toBeUndefined();
    await backOffOver;
    expect(offers).toHaveLength(1);
    expect(offers[0]! - refusedAt).toBeGreaterThanOrEqual(1000);
    // Told, runner 2 asks again and is given it.
    expect((await store.jobs.claim({ id: "runner-2", ...runner }, 60_000))?.id).toBe("job-refused");
  });
});
