import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { resolutionFor } from "./bot-history.js";
import type { Store } from "./types.js";

const sample = (at: string, cpu: number, memory: number, restarts = 0) => ({
  bot_id: "bot_a",
  tenant_id: "acme",
  at,
  cpu_percent: cpu,
  memory_bytes: memory,
  memory_limit_bytes: 64 * 1024 * 1024,
  net_rx_bytes: 100,
  net_tx_bytes: 50,
  pids: 3,
  restarts,
});

describe.each(storeBackends)("bot history on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let clock: Date;

  beforeEach(async () => {
    clock = new Date("2026-03-01T10:00:00.000Z");
    opened = await backend.open({ now: () => clock });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  it("keeps 5 s samples, makes minute and ten-minute rows of ended spans once, and prunes each tier past its age", async () => {
    // Two minutes of samples, 10:00:00 to 10:01:55, every 5 s.
    const raw = [];
    for (let i = 0; i < 24; i++) {
      const at = new Date(Date.parse("2026-03-01T10:00:00.000Z") + i * 5000).toISOString();
      raw.push(sample(at, i < 12 ? 10 : 30, (i + 1) * 1000, i < 12 ? 0 : 2));
    }
    await store.botHistory.addSamples(raw);
    // The same sample sent again (a runner's reconnect) is kept once.
    await store.botHistory.addSamples([raw[0]!]);
    expect(await store.botHistory.samples("bot_a", 5, "2026-03-01T00:00:00.000Z")).toHaveLength(24);

    clock = new Date("2026-03-01T10:02:10.000Z");
    expect((await store.botHistory.downsample()).made).toBe(2);
    // Nothing more to make: each span is made once.
    expect((await store.botHistory.downsample()).made).toBe(0);
    const minutes = await store.botHistory.samples("bot_a", 60, "2026-03-01T00:00:00.000Z");
    expect(minutes.map((row) => [row.at, row.cpu_percent, row.memory_bytes, row.restarts])).toEqual([
      ["2026-03-01T10:00:00.000Z", 10, 12_000, 0],
      ["2026-03-01T10:01:00.000Z", 30, 24_000, 2],
    ]);

    // Ten minutes on: the first ten-minute span ended; an hour on, the raw samples are gone.
    clock = new Date("2026-03-01T10:10:30.000Z");
    await store.botHistory.downsample();
    const tens = await store.botHistory.samples("bot_a", 600, "2026-03-01T00:00:00.000Z");
    expect(tens.map((row) => [row.at, row.cpu_percent, row.memory_bytes])).toEqual([
      ["2026-03-01T10:00:00.000Z", 20, 24_000],
    ]);
    clock = new Date("2026-03-01T11:05:00.000Z");
    const pruned = await store.botHistory.downsample();
    expect(pruned.pruned).toBe(24);
    expect(await store.botHistory.samples("bot_a", 5, "2026-03-01T00:00:00.000Z")).toEqual([]);
    expect(await store.botHistory.samples("bot_a", 60, "2026-03-01T00:00:00.000Z")).toHaveLength(2);
    clock = new Date("2026-03-08T10:20:00.000Z");
    await store.botHistory.downsample();
    expect(await store.botHistory.samples("bot_a", 600, "2026-03-01T00:00:00.000Z")).toEqual([]);
  });

  it("opens one episode of a kind at a time, ends it, and opens the next", async () => {
    const alert = { bot_id: "bot_a", tenant_id: null, kind: "memory", message: "memory over 80%" };
    const first = await store.botHistory.openAlert(alert);
    expect(first?.kind).toBe("memory");
    expect(await store.botHistory.openAlert(alert)).toBeUndefined();
    await store.botHistory.notified(first!.id, null);
    clock = new Date("2026-03-01T10:05:00.000Z");
    await store.botHistory.closeAlert("bot_a", "memory");
    const second = await store.botHistory.openAlert(alert);
    expect(second?.id).not.toBe(first?.id);
    const listed = await store.botHistory.alerts("bot_a");
    expect(listed.map((row) => [row.id, row.ended_at, row.notified_at])).toEqual([
      [second!.id, null, null],
      [first!.id, "2026-03-01T10:05:00.000Z", "2026-03-01T10:00:00.000Z"],
    ]);
  });

  it("reads an hour at 5 s, a day at 1 min, a week at 10 min", () => {
    const now = Date.parse("2026-03-01T10:00:00.000Z");
    expect(resolutionFor(now - 3_600_000, now)).toBe(5);
    expect(resolutionFor(now - 2 * 3_600_000, now)).toBe(60);
    expect(resolutionFor(now - 3 * 86_400_000, now)).toBe(600);
  });
});
