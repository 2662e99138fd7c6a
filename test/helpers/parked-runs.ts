import { expect } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { adminToken } from "./server.js";

/** A gauge of the server's `/metrics` (its one series, labelled by replica). */
export async function gauge(url: string, name: string): Promise<number> {
  const response = await fetch(new URL("/metrics", url), {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  const line = (await response.text()).split("\n").find((text) => text.startsWith(`${name}{`));
  if (!line) throw new Error(`/metrics has no ${name}`);
  return Number(line.split(" ").at(-1));
}

/** Polls `runyard_replica_runs_parked` until it says `expected` (20 s at most). */
export async function waitForParked(url: string, expected: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await gauge(url, "runyard_replica_runs_parked");
    if (value === expected) return;
    if (Date.now() > deadline) throw new Error(`runs parked stayed ${value}, not ${expected}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A run canceled while parked: nothing of it ran. Its engine, started again to end it, may reach
 * its first step before it hears the cancel, and then says that step ended canceled.
 */
export function expectNothingRan(events: readonly RunEvent[]): void {
  expect(events[0]?.type).toBe("run.queued");
  expect(events.filter((e) => ["run.started", "step.started", "step.output"].includes(e.type))).toEqual([]);
  const last = events.at(-1);
  expect(last?.type === "run.finished" && last.status).toBe("canceled");
}
