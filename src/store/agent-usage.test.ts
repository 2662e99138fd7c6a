import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { UnnumberedEvent } from "../core/events.js";
import type { Store } from "./types.js";

const usage = (
  ts: string,
  fields: { model: string; input: number; output: number; cost?: number },
): UnnumberedEvent => ({
  ts,
  type: "agent.usage",
  agent: "openai",
  model: fields.model,
  input_tokens: fields.input,
  output_tokens: fields.output,
  ...(fields.cost !== undefined ? { cost_usd: fields.cost } : {}),
});

describe.each(storeBackends)("agents' usage on $name", (backend) => {
  let opened: TestStore;
  let store: Store;

  beforeEach(async () => {
    opened = await backend.open();
    store = opened.store;
  });

  afterEach(() => opened.dispose());

  it("keeps each usage event with its run's tenant and its submitter's user, once however often it is sent", async () => {
    const ana = await store.users.create({
      username: "ana",
      role: "member",
      tenant_id: "acme",
      password_hash: "x",
    });
    const personal = await store.tokens.create({
      kind: "user",
      name: "ana's",
      tenant_id: "acme",
      user_id: ana.id,
    });
    const run = await store.runs.create({
      kind: "agent",
      name: "t",
      tenant_id: "acme",
      created_by: personal.record.id,
      // As a submit stores it (RunService): the user behind the token.
      created_by_user: ana.id,
    });
    const job = await store.jobs.create({ run_id: run.id, requirements: { labels: [] }, payload: {} });
    const batch = [
      usage("2026-11-24T23:59:59.000Z", { model: "gpt-4.1", input: 1000, output: 10 }),
      { ts: "2026-11-25T00:00:00.000Z", type: "notice", level: "info", message: "x" } as UnnumberedEvent,
      usage("2026-11-25T00:00:00.000Z", { model: "claude-sonnet-4-5", input: 5, output: 5, cost: 0.25 }),
    ];
    await store.events.appendForRun(run.id, batch, { job: { id: job.id, seq: 1 } });
    // The same batch again (a runner that resends after a reconnect) is stored once.
    await store.events.appendForRun(run.id, batch, { job: { id: job.id, seq: 1 } });
    const sums = await store.agentUsage.sum({ tenantId: "acme" });
    expect(sums).toEqual([
      {
        day: "2026-11-24",
        tenant_id: "acme",
        user_id: ana.id,
        agent: "openai",
        model: "gpt-4.1",
        input_tokens: 1000,
        output_tokens: 10,
        reported_usd: 0,
        unpriced_input_tokens: 1000,
        unpriced_output_tokens: 10,
        events: 1,
      },
      {
        day: "2026-11-25",
        tenant_id: "acme",
        user_id: ana.id,
        agent: "openai",
        model: "claude-sonnet-4-5",
        input_tokens: 5,
        output_tokens: 5,
        reported_usd: 0.25,
        unpriced_input_tokens: 0,
        unpriced_output_tokens: 0,
        events: 1,
      },
    ]);
    expect(await store.agentUsage.sum({ userId: ana.id, since: "2026-11-25T00:00:00.000Z" })).toHaveLength(1);
    expect(await store.agentUsage.sum({ tenantId: "globex" })).toEqual([]);
    expect(await store.agentUsage.sum({ until: "2026-11-25T00:00:00.000Z" })).toHaveLength(1);
  });

  it("stores a budget per tenant and user, replaces it, and clears it", async () => {
    await store.budgets.set("tenant", "acme", { usd_per_day: 20, usd_per_month: null, updated_by: "root" });
    await store.budgets.set("tenant", "acme", { usd_per_day: 25, usd_per_month: 300, updated_by: "root" });
    await store.budgets.set("user", "ana", { usd_per_day: 5, usd_per_month: null, updated_by: "root" });
    expect(await store.budgets.get("tenant", "acme")).toMatchObject({ usd_per_day: 25, usd_per_month: 300 });
    expect((await store.budgets.list()).map((b) => [b.scope, b.subject])).toEqual([
      ["tenant", "acme"],
      ["user", "ana"],
    ]);
    expect(await store.budgets.clear("tenant", "acme")).toBe(true);
    expect(await store.budgets.clear("tenant", "acme")).toBe(false);
    expect(await store.budgets.get("tenant", "acme")).toBeUndefined();
  });
});
