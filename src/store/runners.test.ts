import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { RunnerInput } from "./runners.js";
import type { Store } from "./types.js";

let store: Store;

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;

  beforeEach(async () => {
    opened = await backend.open();
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  const gpuBox: RunnerInput = {
    id: "runner-gpu-1",
    group: "gpu",
    labels: ["linux", "cuda"],
    mode: "all",
    capacity: 4,
    cpus: 16,
    memory: "64g",
    hostname: "gpu-1.internal",
    tenant_id: "acme",
    version: "0.1.0",
  };

  describe("runners", () => {
    it("stores a new runner offline with what it advertised", async () => {
      expect(await store.runners.upsert(gpuBox)).toEqual({
        ...gpuBox,
        status: "offline",
        connected_at: null,
        last_heartbeat_at: null,
        token_id: null,
        replica_id: null,
        shared: false,
        isolation: "none",
      });
      expect(await store.runners.get("runner-gpu-1")).toMatchObject({ cpus: 16, memory: "64g" });
      expect(await store.runners.get("runner-nope")).toBeUndefined();
    });

    it("keeps whether a runner is shared and how it isolates, as its latest hello said", async () => {
      const shared = { ...gpuBox, tenant_id: null, shared: true, isolation: "sandbox" as const };
      expect(await store.runners.upsert(shared)).toMatchObject({ shared: true, isolation: "sandbox" });
      expect(await store.runners.get(gpuBox.id)).toMatchObject({ shared: true, isolation: "sandbox" });
      await store.runners.upsert({ ...shared, shared: false, isolation: "none" });
      expect(await store.runners.list()).toMatchObject([{ shared: false, isolation: "none" }]);
    });

    it("replaces what a runner advertises when it says hello again, keeping its connection state", async () => {
      await store.runners.upsert({ ...gpuBox, status: "online", connected_at: "2026-01-01T00:00:00Z" });
      const again = await store.runners.upsert({
        ...gpuBox,
        labels: ["linux"],
        capacity: 8,
        cpus: undefined,
      });
      expect(again).toMatchObject({
        labels: ["linux"],
        capacity: 8,
        cpus: null,
        status: "online",
        connected_at: "2026-01-01T00:00:00.000Z",
      });
    });

    it("binds a runner id to the first runner token that registers it, until that token is revoked", async () => {
      const first = await store.tokens.create({ kind: "runner", name: "first" });
      const second = await store.tokens.create({ kind: "runner", name: "second" });
      expect(await store.runners.upsert({ ...gpuBox, token_id: first.record.id })).toMatchObject({
        token_id: first.record.id,
      });
      expect(
        await store.runners.upsert({ ...gpuBox, capacity: 99, token_id: second.record.id }),
      ).toBeUndefined();
      expect(await store.runners.get(gpuBox.id)).toMatchObject({ capacity: 4, token_id: first.record.id });
      expect(await store.runners.upsert({ ...gpuBox, capacity: 5, token_id: first.record.id })).toMatchObject(
        {
          capacity: 5,
        },
      );
      await store.tokens.revoke(first.record.id);
      expect(await store.runners.upsert({ ...gpuBox, token_id: second.record.id })).toMatchObject({
        token_id: second.record.id,
      });
    });

    it("goes online with connection and heartbeat times, and offline keeping them", async () => {
      await store.runners.upsert(gpuBox);
      expect(await store.runners.setStatus(gpuBox.id, "online", "2026-01-01T10:00:00Z")).toMatchObject({
        status: "online",
        connected_at: "2026-01-01T10:00:00.000Z",
        last_heartbeat_at: "2026-01-01T10:00:00.000Z",
      });
      expect(await store.runners.touch(gpuBox.id, "2026-01-01T10:00:05Z")).toBe(true);
      expect(await store.runners.setStatus(gpuBox.id, "offline", "2026-01-01T10:01:00Z")).toMatchObject({
        status: "offline",
        connected_at: "2026-01-01T10:00:00.000Z",
        last_heartbeat_at: "2026-01-01T10:00:05.000Z",
      });
      expect(await store.runners.setStatus("runner-nope", "online", "2026-01-01T10:00:00Z")).toBeUndefined();
      expect(await store.runners.touch("runner-nope", "2026-01-01T10:00:00Z")).toBe(false);
    });

    it("lists runners by id, per tenant and status", async () => {
      await store.runners.upsert(gpuBox);
      await store.runners.upsert({ ...gpuBox, id: "runner-a", tenant_id: null, status: "online" });
      await store.runners.upsert({ ...gpuBox, id: "runner-z", tenant_id: "globex" });
      const ids = async (query?: Parameters<Store["runners"]["list"]>[0]) =>
        (await store.runners.list(query)).map((runner) => runner.id);
      expect(await ids()).toEqual(["runner-a", "runner-gpu-1", "runner-z"]);
      expect(await ids({ tenantId: "acme" })).toEqual(["runner-gpu-1"]);
      expect(await ids({ tenantId: null })).toEqual(["runner-a"]);
      expect(await ids({ status: "online" })).toEqual(["runner-a"]);
    });
  });
});
