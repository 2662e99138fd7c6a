import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../core/logger.js";
import { openMemoryStore, type Store } from "../../store/index.js";
import { ApprovalWaits } from "./approval-waits.js";

/** The engine's side of an approval, on a real (in-memory SQLite) store; no fleet but `tell`. */
describe("approval waits", () => {
  let store: Store;
  let runId: string;
  const told: string[] = [];

  beforeEach(async () => {
    store = await openMemoryStore({ warn: () => undefined });
    runId = (await store.runs.create({ kind: "workflow", name: "release", status: "running", spec: {} })).id;
    told.length = 0;
  });
  afterEach(() => store.close());

  const waits = (recheckMs: number) =>
    new ApprovalWaits(store, silentLogger, (run, step) => told.push(`${run}/${step}`), recheckMs);
  const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();
  /** The step "gate" of a gate's run, waiting for ann, for an hour. */
  const openGate = (gate: ReturnType<ApprovalWaits["gateFor"]>) =>
    gate.open({ step: "gate", message: "ok?", approvers: ["ann"], deadline: inAnHour() });

  it("finds an answer stored elsewhere at its next re-read, with no message at all (a lost one)", async () => {
    const gate = waits(50).gateFor(runId);
    const { deadline } = await openGate(gate);
    const answer = gate.answer("gate", deadline, new AbortController().signal);
    await store.approvals.answer(runId, "gate", { decision: "approved", by: "ann", comment: "yes" });
    expect(await answer).toEqual({ decision: "approved", by: "ann", comment: "yes" });
  });

  it("reads at once when woken, long before its re-read, and tells the other replicas", async () => {
    const here = waits(60_000);
    const gate = here.gateFor(runId);
    const { deadline } = await openGate(gate);
    const answer = gate.answer("gate", deadline, new AbortController().signal);
    await store.approvals.answer(runId, "gate", { decision: "rejected", by: "ann" });
    const asked = Date.now();
    here.answered(runId, "gate");
    expect(await answer).toEqual({ decision: "rejected", by: "ann" });
    // Well before its re-read (60 s), with room for a busy machine's stalls (was 1 s).
    expect(Date.now() - asked).toBeLessThan(20_000);
    expect(told).toEqual([`${runId}/gate`]);
  });

  it("stores a timeout at the deadline, and keeps the first deadline when opened again", async () => {
    const gate = waits(60_000).gateFor(runId);
    const first = new Date(Date.now() + 100).toISOString();
    const { deadline } = await gate.open({
      step: "gate",
      message: "ok?",
      approvers: ["ann"],
      deadline: first,
    });
    const reopened = await openGate(gate);
    expect(reopened.deadline).toBe(first);
    expect(await gate.answer("gate", deadline, new AbortController().signal)).toEqual({
      decision: "timeout",
      by: null,
    });
    expect((await store.approvals.get(runId, "gate"))?.decision).toBe("timeout");
  });

  it("gives the answer that beat the deadline, not a timeout", async () => {
    const gate = waits(60_000).gateFor(runId);
    const past = new Date(Date.now() - 1000).toISOString();
    await gate.open({ step: "gate", message: "ok?", approvers: ["ann"], deadline: past });
    await store.approvals.answer(runId, "gate", { decision: "approved", by: "ann" });
    expect(await gate.answer("gate", past, new AbortController().signal)).toEqual({
      decision: "approved",
      by: "ann",
    });
  });

  it("stops waiting, with no answer, when the run is canceled", async () => {
    const gate = waits(60_000).gateFor(runId);
    const { deadline } = await openGate(gate);
    const cancel = new AbortController();
    const answer = gate.answer("gate", deadline, cancel.signal);
    cancel.abort();
    expect(await answer).toBeUndefined();
    expect((await store.approvals.get(runId, "gate"))?.decision).toBeNull();
  });

  it("stops reading when its server stops, and gives its engine neither an answer nor a cancel", async () => {
    const here = waits(20);
    const gate = here.gateFor(runId);
    const { deadline } = await openGate(gate);
    // A second server's wait on another run, not stopped: its re-reads are the clock this test
    // waits on, so the stopped one is seen to miss several of its own.
    const otherRun = (
      await store.runs.create({ kind: "workflow", name: "other", status: "running", spec: {} })
    ).id;
    const other = waits(20).gateFor(otherRun);
    const opened = await openGate(other);
    const reads = new Map<string, number>();
    const readSeen = new Set<() => void>();
    const get = store.approvals.get.bind(store.approvals);
    store.approvals.get = (...args) => {
      reads.set(args[0], (reads.get(args[0]) ?? 0) + 1);
      for (const seen of readSeen) seen();
      return get(...args);
    };
    const untilReads = (run: string, count: number) =>
      new Promise<void>((resolve) => {
        const seen = (): void => {
          if ((reads.get(run) ?? 0) < count) return;
          readSeen.delete(seen);
          resolve();
        };
        readSeen.add(seen);
        seen();
      });
    let settled = false;
    void gate.answer("gate", deadline, new AbortController().signal).finally(() => {
      settled = true;
    });
    const stopOther = new AbortController();
    void other.answer("gate", opened.deadline, stopOther.signal).catch(() => undefined);
    await untilReads(runId, 1);
    here.close();
    const readsAtClose = reads.get(runId) ?? 0;
    // Answered after the stop (as at the next start): this wait no longer reads it.
    await store.approvals.answer(runId, "gate", { decision: "approved", by: "ann" });
    here.answered(runId, "gate");
    await untilReads(otherRun, (reads.get(otherRun) ?? 0) + 5);
    stopOther.abort();
    expect(reads.get(runId) ?? 0).toBeLessThanOrEqual(readsAtClose + 1);
    expect(settled).toBe(false);
  });
});
