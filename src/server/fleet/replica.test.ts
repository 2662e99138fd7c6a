import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../core/logger.js";
import { localLink } from "../../store/fleet-link.js";
import { openMemoryStore } from "../../store/sqlite.js";
import type { Store } from "../../store/types.js";
import { Replica } from "./replica.js";

const opened: Array<{ replica: Replica; store: Store }> = [];

afterEach(async () => {
  for (const { replica, store } of opened.splice(0)) {
    await replica.stop(false);
    await store.close();
  }
});

async function seenAt(store: Store, id: string): Promise<string | undefined> {
  return (await store.fleet.listReplicas()).find((row) => row.id === id)?.seen_at;
}

/** Resolves once the replica's row has been written `times` more times. */
async function heartbeats(store: Store, id: string, times: number): Promise<void> {
  let last = await seenAt(store, id);
  for (let seen = 0; seen < times; ) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const now = await seenAt(store, id);
    if (now !== last) {
      seen++;
      last = now;
    }
  }
}

describe("Replica", () => {
  it("goes on heartbeating while a leader round takes longer than the lease", async () => {
    const store = await openMemoryStore({ warn: () => undefined });
    const replica = new Replica(
      "r1",
      store,
      localLink(),
      { heartbeatMs: 20, leaseMs: 100 },
      silentLogger,
      () => undefined,
      () => ({ url: null, version: "test", schema_level: 45 }),
    );
    opened.push({ replica, store });
    let release = (): void => undefined;
    let rounds = 0;
    replica.whenLeading(async () => {
      rounds++;
      if (rounds > 1) return;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    await replica.join(true);
    replica.start();
    while (rounds === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    // The round is stuck; the row must still change, several times over.
    await heartbeats(store, "r1", 3);
    // Ticks that came while the round was stuck did not queue further rounds.
    expect(rounds).toBe(1);
    release();
    while (rounds < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  });

  it("warns when its heartbeats come more than half a lease apart, saying the write was quick", async () => {
    const store = await openMemoryStore({ warn: () => undefined });
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const replica = new Replica(
      "r1",
      store,
      localLink(),
      { heartbeatMs: 20, leaseMs: 200 },
      logger,
      () => undefined,
      () => ({ url: null, version: "test", schema_level: 45 }),
    );
    opened.push({ replica, store });
    await replica.join(true);
    replica.start();
    await heartbeats(store, "r1", 2);
    expect(lines).toEqual([]);
    // The event loop held for 300 ms: no beat can start, so the next comes late.
    const until = Date.now() + 300;
    while (Date.now() < until) {}
    await heartbeats(store, "r1", 1);
    const warning = lines.find((line) => String(line.msg).includes("half a replica lease apart"));
    expect(warning).toMatchObject({ replica: "r1", leaseMs: 200 });
    expect(warning?.gapMs).toBeGreaterThanOrEqual(290);
    // The gap is put down to the held loop, not to the write of the beat.
    expect(warning?.writeMs).toBeLessThan(Number(warning?.gapMs));
  });

  it("times a replica first seen in a slow read from when the read came back, not from before it", async () => {
    const store = await openMemoryStore({ warn: () => undefined });
    // The leader's reads of the replicas table, one of them held as a busy database would.
    let reads = 0;
    let hold: Promise<void> | undefined;
    const fleet = {
      ...store.fleet,
      listReplicas: async () => {
        reads++;
        await hold;
        return store.fleet.listReplicas();
      },
    };
    const leader = new Replica(
      "leader",
      { ...store, fleet },
      localLink(),
      { heartbeatMs: 20, leaseMs: 200 },
      silentLogger,
      () => undefined,
      () => ({ url: null, version: "test", schema_level: 45 }),
    );
    opened.push({ replica: leader, store });
    await leader.join(true);
    leader.start();
    let release = (): void => undefined;
    hold = new Promise((resolve) => {
      release = resolve;
    });
    const heldRead = reads + 1;
    while (reads < heldRead) await new Promise((resolve) => setTimeout(resolve, 2));
    // The read is held past a whole lease; a replica joins just before it comes back.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await store.fleet.heartbeat({
      id: "joined",
      hostname: "h",
      url: null,
      version: "test",
      schema_level: 45,
    });
    hold = undefined;
    release();
    // Two more rounds of the leader, well within a lease of the row being written.
    const after = reads + 2;
    while (reads < after) await new Promise((resolve) => setTimeout(resolve, 2));
    expect((await store.fleet.listReplicas()).map((row) => row.id)).toContain("joined");
  });

  it("heartbeats from the moment it joins, so a server slow to start is not presumed dead", async () => {
    const store = await openMemoryStore({ warn: () => undefined });
    const timings = { heartbeatMs: 20, leaseMs: 100 };
    const make = (id: string, onFenced: () => void) =>
      new Replica(id, store, localLink(), timings, silentLogger, onFenced, () => ({
        url: null,
        version: "test",
        schema_level: 45,
      }));
    const leader = make("leader", () => undefined);
    opened.push({ replica: leader, store });
    await leader.join(true);
    leader.start();
    let fenced = false;
    const starting = make("starting", () => {
      fenced = true;
    });
    opened.push({ replica: starting, store });
    // Joined, but its server is still recovering runs: start() comes much later than a lease.
    await starting.join(false);
    await heartbeats(store, "starting", 12);
    expect((await store.fleet.listReplicas()).map((row) => row.id)).toContain("starting");
    expect(fenced).toBe(false);
  });
});
