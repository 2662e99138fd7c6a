import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../../test/helpers/store-backends.js";
import { silentLogger } from "../../core/logger.js";
import type { Store } from "../../store/index.js";
import { ConcurrencyGroups } from "./concurrency-groups.js";
import type { ActiveRun } from "./run-kind.js";

const sqlite = storeBackends.find((backend) => backend.name === "sqlite");

/** Far longer than any test: a waiter that misses its cancel would wait this long for its next look. */
const pollMs = 10 * 60 * 1000;

describe("a run waiting for its concurrency group", () => {
  let opened: TestStore;
  /** The store's clock: the holder is created a second before the waiter, so it is first in line
   * (made in the same millisecond, their order would fall to their ids, which are random). */
  let now = Date.parse("2026-01-01T00:00:00Z");
  beforeEach(async () => {
    opened = await (sqlite ?? storeBackends[0])!.open({ now: () => new Date(now) });
  });
  afterEach(() => opened.dispose());

  it("stops waiting at once when it is canceled while the store is read", async () => {
    const { store } = opened;
    const holder = await store.runs.create({ kind: "workflow", name: "deploy", concurrency_group: "prod" });
    now += 1000;
    const waiting = await store.runs.create({ kind: "workflow", name: "deploy", concurrency_group: "prod" });
    const controller = new AbortController();
    // The cancel comes while the waiter reads who holds the slot: its abort event fires before
    // the waiter listens for one.
    const canceling: Pick<Store, "concurrency"> = {
      concurrency: {
        ...store.concurrency,
        waitingFor: (...args: Parameters<Store["concurrency"]["waitingFor"]>) => {
          controller.abort();
          return store.concurrency.waitingFor(...args);
        },
      },
    };
    const groups = new ConcurrencyGroups(canceling, async () => undefined, silentLogger, pollMs);
    expect(await groups.waitForSlot(activeRun(holder, new AbortController().signal))).toBe(true);
    expect(await groups.waitForSlot(activeRun(waiting, controller.signal))).toBe(false);
  });
});

function activeRun(record: ActiveRun["record"], signal: AbortSignal): ActiveRun {
  return {
    record,
    signal,
    halt: new AbortController().signal,
    sink: { emit: () => undefined } as unknown as ActiveRun["sink"],
    resumed: [],
    markStarted: () => undefined,
  };
}
