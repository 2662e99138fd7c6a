import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0031_agent_budgets");

describe.each(migrationBackends)("the agent budgets migration on %s", (backend) => {
  it("counts the usage events stored before it, each with its run's tenant and submitter", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into runs (id, kind, name, status, tenant_id, created_by, spec, vars, steps, created_at)
        values ('run_1', 'agent', 't', 'success', 'acme', 'usr_1', '{}', '{}', '[]', '2026-11-01T00:00:00.000Z')`.execute(
        db,
      );
      const usage = JSON.stringify({
        type: "agent.usage",
        agent: "codex",
        model: "gpt-5",
        input_tokens: 100,
        output_tokens: 7,
        cost_usd: 0.5,
      });
      await sql`insert into run_events (run_id, seq, type, ts, data) values
        ('run_1', 1, 'run.queued', '2026-11-01T00:00:00.000Z', '{}'),
        ('run_1', 2, 'agent.usage', '2026-11-01T00:00:01.000Z', ${usage})`.execute(db);
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const rows = await sql<
        Record<string, unknown>
      >`select run_id, seq, at, tenant_id, user_id, agent, model,
        input_tokens, output_tokens, cost_usd from agent_usage`.execute(db);
      expect(
        rows.rows.map((row) => ({
          ...row,
          seq: Number(row.seq),
          input_tokens: Number(row.input_tokens),
          output_tokens: Number(row.output_tokens),
        })),
      ).toEqual([
        {
          run_id: "run_1",
          seq: 2,
          at: "2026-11-01T00:00:01.000Z",
          tenant_id: "acme",
          user_id: "usr_1",
          agent: "codex",
          model: "gpt-5",
          input_tokens: 100,
          output_tokens: 7,
          cost_usd: 0.5,
        },
      ]);
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
    });
  });
});
