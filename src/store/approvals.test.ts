import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { Store } from "./types.js";

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let runId: string;
  const clock = new Date("2026-03-01T10:00:00.000Z");

  beforeEach(async () => {
    opened = await backend.open({ now: () => clock });
    store = opened.store;
    runId = (await store.runs.create({ kind: "workflow", name: "deploy", status: "running", spec: {} })).id;
  });

  afterEach(() => opened.dispose());

  const wait = (deadline = "2026-03-01T11:00:00.000Z") => ({
    run_id: runId,
    step: "gate",
    message: "ship 1.2?",
    approvers: ["ann", "role:admin"],
    deadline,
  });

  describe("approvals", () => {
    it("opens a wait once: opening it again keeps the first deadline", async () => {
      const first = await store.approvals.open(wait());
      const again = await store.approvals.open(wait("2026-03-02T00:00:00.000Z"));
      expect(again).toEqual(first);
      expect(first).toMatchObject({
        step: "gate",
        approvers: ["ann", "role:admin"],
        deadline: "2026-03-01T11:00:00.000Z",
        decision: null,
        answered_by: null,
        created_at: "2026-03-01T10:00:00.000Z",
      });
    });

    it("takes the first answer only", async () => {
      await store.approvals.open(wait());
      const answered = await store.approvals.answer(runId, "gate", {
        decision: "approved",
        by: "ann",
        comment: "go",
      });
      expect(answered).toMatchObject({ decision: "approved", answered_by: "ann", comment: "go" });
      expect(answered?.answered_at).toBe("2026-03-01T10:00:00.000Z");
      expect(await store.approvals.answer(runId, "gate", { decision: "timeout", by: null })).toBeUndefined();
      expect((await store.approvals.get(runId, "gate"))?.decision).toBe("approved");
    });

    it("answers nothing for a wait that was never opened", async () => {
      expect(
        await store.approvals.answer(runId, "gate", { decision: "rejected", by: "ann" }),
      ).toBeUndefined();
      expect(await store.approvals.listForRun(runId)).toEqual([]);
    });

    it("lists a run's waits in the order they were opened", async () => {
      await store.approvals.open(wait());
      await store.approvals.open({ ...wait(), step: "second" });
      expect((await store.approvals.listForRun(runId)).map((a) => a.step)).toEqual(["gate", "second"]);
    });
  });
});
