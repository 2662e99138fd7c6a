import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { silentLogger } from "../core/logger.js";
import type { Store } from "../store/index.js";
import { EventBus } from "./event-bus.js";
import { JobQueue } from "./job-queue.js";

const runner = { group: "default", labels: [], tenant_id: null, shared: false, isolation: "none" } as const;

/** Stores a run named `name` and a queued step job of it for each of `ids`. */
async function queuedJobs(store: Store, name: string, ids: readonly string[]): Promise<void> {
  const run = await store.runs.create({ kind: "workflow", name });
  const payload = {
    run_id: run.id,
    step: "s",
    host: "worker",
    attempt: 1,
    action: "cmd.run",
    script: "true",
    env: {},
  };
  for (const id of ids)
    await store.jobs.create({ id, run_id: run.id, requirements: { labels: [] }, payload });
}

describe("a job its runner refused", () => {
  let opened: TestStore;
  let queue: JobQueue | undefined;
  /** Each offer the queue makes through its links (the hub here and, in a fleet, the other replicas). */
  let offers: number[];
  let offered: () => void;
  beforeEach(async () => {
    opened = await storeBackends.find((backend) => backend.name === "sqlite")!.open();
    offers = [];
    offered = () => undefined;
  });
  afterEach(() => {
    queue?.stop();
    return opened.dispose();
  });

  /** A queue on the test's store whose offers are counted in `offers`. */
  function countingQueue(store: Store): JobQueue {
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
    return queue;
  }

  /** Resolves once the queue has made `count` offers. */
  function offersMade(count: number): Promise<void> {
    return new Promise((resolve) => {
      offered = () => {
        if (offers.length >= count) resolve();
      };
    });
  }

  it("is offered to every replica's runners once its back-off is over, so that a runner elsewhere that found nothing claims it", async () => {
    const { store } = opened;
    const refusing = countingQueue(store);
    await queuedJobs(store, "refused", ["job-refused"]);
    await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
    const refusedAt = Date.now();
    const backOffOver = offersMade(1);
    const outcome = await refusing.refused("job-refused", "runner-1", "its Docker engine is gone");
    expect(outcome).toEqual({ retryInMs: 1000 });
    // Runner 2, on another replica, asks now: the job waits out its back-off.
    expect(await store.jobs.claim({ id: "runner-2", ...runner }, 60_000)).toBeUndefined();
    await backOffOver;
    expect(offers).toHaveLength(1);
    expect(offers[0]! - refusedAt).toBeGreaterThanOrEqual(1000);
    // Told, runner 2 asks again and is given it.
    expect((await store.jobs.claim({ id: "runner-2", ...runner }, 60_000))?.id).toBe("job-refused");
  });

  it("is offered at its back-off's end by a server started after the refusal (its timer gone with the server before)", async () => {
    const { store } = opened;
    await queuedJobs(store, "refused-before-restart", ["job-early", "job-later"]);
    const first = Date.now() + 600;
    const second = Date.now() + 1200;
    for (const [id, at] of [
      ["job-early", first],
      ["job-later", second],
    ] as const) {
      await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
      await store.jobs.refuse(id, "runner-1", [], new Date(at));
    }
    expect((await store.jobs.nextBackoffEnd())?.getTime()).toBe(first);
    // The restarted server's queue: nothing else in this test tells it the queue changed.
    const both = offersMade(2);
    await countingQueue(store).offerAfterBackoffs();
    await both;
    expect(offers[0]!).toBeGreaterThanOrEqual(first);
    expect(offers[1]!).toBeGreaterThanOrEqual(second);
    expect(await store.jobs.nextBackoffEnd()).toBeUndefined();
  });

  it("waits out a back-off far ahead (a clock set back since the refusal) with one timer, not one a millisecond", async () => {
    const { store } = opened;
    await queuedJobs(store, "refused-far-ahead", ["job-far"]);
    await store.jobs.claim({ id: "runner-1", ...runner }, 60_000);
    // 30 days: past what setTimeout holds (2^31 - 1 ms), which it fires after 1 ms instead.
    await store.jobs.refuse("job-far", "runner-1", [], new Date(Date.now() + 30 * 24 * 3600_000));
    const overflows: Error[] = [];
    const onWarning = (warning: Error) => {
      if (warning.name === "TimeoutOverflowWarning") overflows.push(warning);
    };
    process.on("warning", onWarning);
    try {
      await countingQueue(store).offerAfterBackoffs();
      // Such a timer warns as it is set (the warning is emitted on the next tick).
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(overflows).toEqual([]);
    expect(offers).toEqual([]);
  });
});
