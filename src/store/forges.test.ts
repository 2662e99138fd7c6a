import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { deliveryClaimGraceMs } from "./forges.js";
import type { Store } from "./types.js";

const secretKey = "forges-test-key-0123456789abcdefghijk";

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let clock = 0;

  beforeEach(async () => {
    clock = 0;
    opened = await backend.open({ now: () => new Date(Date.UTC(2026, 0, 1) + clock++ * 1000), secretKey });
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  const newForge = (id: string, tenant: string | null = "acme") => ({
    id,
    tenant_id: tenant,
    kind: "github",
    repo: "acme/app",
    api_url: "https://api.github.com",
    label: "runyard",
    agent: "claude_code",
    settings: { test: "npm test" },
    created_by: "tok_a",
    token: "ghp_forge_token_123",
    webhook_secret: "whsec-0123456789abcdef",
  });

  it("stores a forge with its token and webhook secret sealed, shown without them", async () => {
    const forge = await store.forges.create(newForge("frg_1"));
    expect(forge).toMatchObject({
      id: "frg_1",
      tenant_id: "acme",
      repo: "acme/app",
      settings: { test: "npm test" },
    });
    expect(JSON.stringify(forge)).not.toContain("ghp_forge_token_123");
    expect(await store.forges.get("frg_1")).toEqual(forge);
    expect(await store.forges.secrets("frg_1")).toEqual({
      token: "ghp_forge_token_123",
      webhook_secret: "whsec-0123456789abcdef",
    });
    await store.forges.create(newForge("frg_2", null));
    expect((await store.forges.list("acme")).map((f) => f.id)).toEqual(["frg_1"]);
    expect((await store.forges.list(null)).map((f) => f.id)).toEqual(["frg_2"]);
    expect((await store.forges.list(undefined)).map((f) => f.id)).toEqual(["frg_1", "frg_2"]);
  });

  it("records a delivery once, and says what became of the first", async () => {
    await store.forges.create(newForge("frg_1"));
    const delivery = { forge_id: "frg_1", delivery_id: "d-1", event: "issues" };
    expect(await store.forges.recordDelivery(delivery)).toEqual({ first: true });
    await store.forges.settleDelivery("frg_1", "d-1", "started", "run_1");
    expect(await store.forges.recordDelivery(delivery)).toEqual({
      first: false,
      earlier: { outcome: "started", run_id: "run_1" },
    });
  });

  it("forgets a delivery claimed and never settled, so that its redelivery is first again; keeps a settled one", async () => {
    await store.forges.create(newForge("frg_1"));
    const failed = { forge_id: "frg_1", delivery_id: "d-failed", event: "issues" };
    const body = { forge_id: "frg_1", delivery_id: "sha256:abc", event: "issues" };
    expect(await store.forges.recordDelivery(failed)).toEqual({ first: true });
    expect(await store.forges.recordDelivery(body)).toEqual({ first: true });
    // A second sending while the first acts on it: not first, the first still being acted on.
    expect(await store.forges.recordDelivery(failed)).toEqual({
      first: false,
      earlier: { outcome: "received", run_id: null },
    });
    await store.forges.forgetDeliveries("frg_1", ["d-failed", "sha256:abc"]);
    expect(await store.forges.recordDelivery(failed)).toEqual({ first: true });
    expect(await store.forges.recordDelivery(body)).toEqual({ first: true });
    await store.forges.settleDelivery("frg_1", "d-failed", "started: task", "run_1");
    await store.forges.forgetDeliveries("frg_1", ["d-failed"]);
    expect(await store.forges.recordDelivery(failed)).toEqual({
      first: false,
      earlier: { outcome: "started: task", run_id: "run_1" },
    });
  });

  it("lets a redelivery take over a claim its replica died holding, once the grace has passed, and only one", async () => {
    await store.forges.create(newForge("frg_1"));
    const delivery = { forge_id: "frg_1", delivery_id: "d-orphan", event: "issues" };
    expect(await store.forges.recordDelivery(delivery)).toEqual({ first: true });
    // Still within the grace: the first may still be acting on it.
    expect(await store.forges.recordDelivery(delivery)).toEqual({
      first: false,
      earlier: { outcome: "received", run_id: null },
    });
    clock += deliveryClaimGraceMs / 1000 + 1;
    const answers = await Promise.all(Array.from({ length: 4 }, () => store.forges.recordDelivery(delivery)));
    expect(answers.filter((answer) => answer.first)).toHaveLength(1);
    // A settled delivery is never taken over, however old.
    await store.forges.settleDelivery("frg_1", "d-orphan", "started: task", "run_9");
    clock += deliveryClaimGraceMs / 1000 + 1;
    expect(await store.forges.recordDelivery(delivery)).toEqual({
      first: false,
      earlier: { outcome: "started: task", run_id: "run_9" },
    });
  });

  it("lets one of many sendings of a delivery at once claim it", async () => {
    await store.forges.create(newForge("frg_1"));
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        store.forges.recordDelivery({ forge_id: "frg_1", delivery_id: "same", event: "issues" }),
      ),
    );
    expect(answers.filter((answer) => answer.first)).toHaveLength(1);
  });

  it("finds the newest run of an issue or pull request, and reports a run's end once", async () => {
    await store.forges.create(newForge("frg_1"));
    await store.forges.addRun({ run_id: "run_1", forge_id: "frg_1", issue_number: 7, pull_number: null });
    await store.forges.addRun({ run_id: "run_2", forge_id: "frg_1", issue_number: 7, pull_number: 12 });
    expect((await store.forges.latestRun("frg_1", { issue: 7 }))?.run_id).toBe("run_2");
    expect((await store.forges.latestRun("frg_1", { pull: 12 }))?.run_id).toBe("run_2");
    expect(await store.forges.latestRun("frg_1", { pull: 13 })).toBeUndefined();
    expect(await store.forges.markReported("run_1", 12)).toBe(true);
    expect(await store.forges.markReported("run_1", 12)).toBe(false);
    expect(await store.forges.getRun("run_1")).toMatchObject({ pull_number: 12, reported: true });
    expect(await store.forges.remove("frg_1")).toBe(true);
    expect(await store.forges.getRun("run_2")).toBeUndefined();
  });
});
