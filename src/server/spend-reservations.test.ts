import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import { RunyardError } from "../core/errors.js";
import type { Store } from "../store/index.js";
import { SpendBudgets, type TurnReservation } from "./spend-budgets.js";

/**
 * Turns that start at the same moment share what is left of a budget: each holds its part as it
 * starts (in one transaction under the tenant's and user's locks), and gives back what it did
 * not spend as it ends. Run on SQLite and on PostgreSQL, where the turns' transactions really
 * run at once on several connections.
 */
describe.each(storeBackends)("spend held by running turns on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let runId: string;
  const owner = { tenantId: "acme", createdBy: null };

  beforeEach(async () => {
    opened = await backend.open();
    store = opened.store;
    await store.budgets.set("tenant", "acme", { usd_per_day: 3, usd_per_month: null, updated_by: null });
    const run = await store.runs.create({ kind: "agent", name: "t", tenant_id: "acme" });
    runId = run.id;
    // $1 of the $3 is spent already.
    await spend(runId, 1);
  });

  afterEach(() => opened.dispose());

  /** Stores an agent.usage event of `usd`, dated `at` (the runner's clock) or now. */
  async function spend(run: string, usd: number, at = new Date()): Promise<void> {
    const job = await store.jobs.create({ run_id: run, requirements: { labels: [] }, payload: {} });
    await store.events.appendForRun(
      run,
      [
        {
          ts: at.toISOString(),
          type: "agent.usage",
          agent: "openai",
          model: "gpt-4.1",
          input_tokens: 10,
          output_tokens: 1,
          cost_usd: usd,
        },
      ],
      { job: { id: job.id, seq: 1 } },
    );
  }

  async function startTogether(
    budgets: SpendBudgets,
    count: number,
    estimate?: number,
  ): Promise<Array<TurnReservation | RunyardError>> {
    return Promise.all(
      Array.from({ length: count }, () =>
        budgets
          .reserveTurn(owner, {
            runId,
            ...(estimate !== undefined ? { estimate_usd: estimate } : {}),
            ttl_ms: 60_000,
          })
          .then(
            (held) => {
              if (!held) throw new Error("no budget applied");
              return held;
            },
            (error: unknown) => {
              if (error instanceof RunyardError) return error;
              throw error;
            },
          ),
      ),
    );
  }

  const given = (results: Array<TurnReservation | RunyardError>) =>
    results.filter((r): r is TurnReservation => !(r instanceof RunyardError));
  const refused = (results: Array<TurnReservation | RunyardError>) =>
    results.filter((r): r is RunyardError => r instanceof RunyardError);

  it("gives all that is left to one of several turns starting together, and refuses the others", async () => {
    const results = await startTogether(new SpendBudgets(store), 5);
    expect(given(results).map((r) => r.left_usd)).toEqual([2]);
    expect(given(results)[0]?.share).toBe(false);
    expect(refused(results)).toHaveLength(4);
    for (const error of refused(results)) {
      expect(error.code).toBe("BUDGET_EXCEEDED");
      expect(error.message).toBe(
        "what is left of tenant acme's daily budget of $3 ($2.0000) is held by 1 agent turn running now",
      );
      expect(error.hint).toMatch(/turn_reservation_usd/);
    }
    // Its end gives back what it did not spend: the next turn gets it all again.
    await given(results)[0]?.release();
    expect((await startTogether(new SpendBudgets(store), 1))[0]).toMatchObject({ left_usd: 2 });
  });

  it("shares what is left in parts of turn_reservation_usd, never more than was left", async () => {
    const budgets = new SpendBudgets(store, { turn_reservation_usd: 0.75 });
    const results = await startTogether(budgets, 5);
    const amounts = given(results)
      .map((r) => r.left_usd)
      .sort();
    // $2 left: two turns of $0.75, one of the $0.50 left, two refused.
    expect(amounts).toEqual([0.5, 0.75, 0.75]);
    expect(given(results).every((r) => r.share)).toBe(true);
    expect(refused(results).map((e) => e.code)).toEqual(["BUDGET_EXCEEDED", "BUDGET_EXCEEDED"]);
    // A turn's own dollar budget is what it holds when it is smaller.
    for (const held of given(results)) await held.release();
    expect((await startTogether(budgets, 1, 0.1))[0]).toMatchObject({ left_usd: 0.1 });
  });

  it("counts what a running turn spent once: as spent, not also as held", async () => {
    const budgets = new SpendBudgets(store, { turn_reservation_usd: 1.5 });
    const [first] = given(await startTogether(budgets, 1));
    expect(first?.left_usd).toBe(1.5);
    // It spends $1.25 of its $1.50: $0.25 still held, $2.25 spent, $0.50 left.
    await spend(runId, 1.25);
    const [second] = given(await startTogether(budgets, 1));
    expect(second?.left_usd).toBeCloseTo(0.5, 9);
  });

  it("counts what the run spent before a turn's hold as spent, even dated after it by a runner's clock", async () => {
    // The run's runner is ahead: its $0.50 was reported before the holds, dated after. (A month's
    // budget: a day's could end between the two dates.)
    await store.budgets.set("tenant", "acme", { usd_per_day: null, usd_per_month: 3, updated_by: null });
    await spend(runId, 0.5, new Date(Date.now() + 5_000));
    const budgets = new SpendBudgets(store, { turn_reservation_usd: 0.75 });
    // $1.50 left: two turns of $0.75, a third refused; the $0.50 is not the holds' own spend.
    const results = await startTogether(budgets, 3);
    expect(given(results).map((r) => r.left_usd)).toEqual([0.75, 0.75]);
    expect(refused(results).map((e) => e.code)).toEqual(["BUDGET_EXCEEDED"]);
  });

  it("drops a hold whose turn's end was never seen once it expires", async () => {
    const budgets = new SpendBudgets(store);
    const lost = await budgets.reserveTurn(owner, { runId, ttl_ms: 0 });
    expect(lost?.left_usd).toBe(2);
    const next = await budgets.reserveTurn(owner, { runId, ttl_ms: 60_000 });
    expect(next?.left_usd).toBe(2);
  });

  it("keeps a user's budget on their run after the token that submitted it is revoked", async () => {
    await store.budgets.clear("tenant", "acme");
    const ana = await store.users.create({
      username: "ana",
      role: "member",
      tenant_id: "acme",
      password_hash: "x",
    });
    await store.budgets.set("user", "ana", { usd_per_day: 3, usd_per_month: null, updated_by: null });
    const token = await store.tokens.create({
      kind: "user",
      name: "ana's",
      tenant_id: "acme",
      user_id: ana.id,
    });
    const run = await store.runs.create({
      kind: "agent",
      name: "t",
      tenant_id: "acme",
      created_by: token.record.id,
      created_by_user: ana.id,
    });
    await store.tokens.revoke(token.record.id);
    // Spent after the revocation, and still ana's: $2.5 of her $3.
    await spend(run.id, 2.5);
    expect((await store.agentUsage.sum({ userId: ana.id })).map((sum) => sum.reported_usd)).toEqual([2.5]);
    const runOwner = { tenantId: "acme", createdBy: token.record.id, createdByUser: ana.id };
    const held = await new SpendBudgets(store).reserveTurn(runOwner, { runId: run.id, ttl_ms: 60_000 });
    expect(held?.left_usd).toBeCloseTo(0.5, 9);
    expect(held?.standing).toMatchObject({ scope: "user", subject: "ana" });
  });

  it("holds nothing when no budget applies", async () => {
    await store.budgets.clear("tenant", "acme");
    expect(await new SpendBudgets(store).reserveTurn(owner, { runId, ttl_ms: 60_000 })).toBeUndefined();
  });
});
