import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { silentLogger } from "../core/logger.js";
import { JobBroker } from "./job-broker.js";

const sqlite = storeBackends.find((backend) => backend.name === "sqlite");

describe("JobBroker relaying reports for an engine on another replica", () => {
  let opened: TestStore;
  beforeEach(async () => {
    opened = await (sqlite ?? storeBackends[0])!.open();
  });
  afterEach(() => opened.dispose());

  it("stores and announces them, and keeps no memory of the jobs it relayed", async () => {
    const { store } = opened;
    const run = await store.createRun({ kind: "workflow", name: "elsewhere" });
    const announced: string[] = [];
    const broker = new JobBroker(
      store,
      { dispatch: () => undefined, cancel: () => false, reported: (_run, jobId) => announced.push(jobId) },
      silentLogger,
    );
    for (let i = 0; i < 50; i++) {
      const id = `job-${i}`;
      await store.createJob({ id, run_id: run.id, requirements: { labels: [] }, payload: {} });
      expect(await broker.events(id, 1, [], "runner-1")).toBe("stored");
    }
    expect(announced).toHaveLength(50);
    expect((await store.listJobReports({})).length).toBe(50);
    // Nothing here waits for these jobs: a replica that relays for others must not grow with them.
    expect((broker as unknown as { unread: Set<string> }).unread.size).toBe(0);
  });
});
