import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, Migrator, sql } from "kysely";
import { describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../../test/helpers/postgres.js";
import { type DatabaseLocation, openDatabase } from "../database-location.js";
import { migrationLockTableName, migrations, migrationTableName } from "./index.js";

const adminUrl = inject("postgresAdminUrl");
const backends = adminUrl ? (["sqlite", "postgres"] as const) : (["sqlite"] as const);
const names = Object.keys(migrations);
const before = names[names.indexOf("0031_agent_budgets") - 1] ?? "";

async function newLocation(backend: "sqlite" | "postgres"): Promise<DatabaseLocation> {
  if (backend === "postgres") return { dialect: "postgres", url: await createTestDatabase(adminUrl) };
  return { dialect: "sqlite", path: join(mkdtempSync(join(tmpdir(), "runyard-budgets-")), "runyard.db") };
}

describe.each(backends)("the agent budgets migration on %s", (backend) => {
  it("counts the usage events stored before it, each with its run's tenant and submitter", async () => {
    const opened = await openDatabase(await newLocation(backend), { readonly: false });
    const db = opened.db as Kysely<unknown>;
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => migrations },
      migrationTableName,
      migrationLockTableName,
    });
    try {
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
    } finally {
      await opened.close();
    }
  });
});
