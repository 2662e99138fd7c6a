import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0044_spend_hold_after_seq");

describe.each(migrationBackends)("the spend holds' usage seq migration on %s", (backend) => {
  it("gives a hold made before it the seq its time picked: the run's last usage dated before the hold", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      const usage = (seq: number, at: string) =>
        sql`insert into agent_usage (run_id, seq, at, tenant_id, user_id, agent, model, input_tokens, output_tokens, cost_usd)
          values ('run_1', ${seq}, ${at}, 'acme', 'usr_1', 'codex', 'gpt-5', 1, 1, 0.5)`.execute(db);
      await usage(3, "2026-11-01T00:00:01.000Z");
      await usage(5, "2026-11-01T00:00:02.000Z");
      await usage(8, "2026-11-01T00:00:04.000Z");
      const hold = (id: string, run: string, createdAt: string) =>
        sql`insert into spend_reservations (id, run_id, tenant_id, user_id, usd, created_at, expires_at)
          values (${id}, ${run}, 'acme', 'usr_1', 1, ${createdAt}, '2026-11-01T01:00:00.000Z')`.execute(db);
      await hold("hold_mid", "run_1", "2026-11-01T00:00:03.000Z");
      await hold("hold_first", "run_1", "2026-11-01T00:00:00.500Z");
      await hold("hold_other_run", "run_2", "2026-11-01T00:00:03.000Z");
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const rows = await sql<{ id: string; after_seq: number | string }>`
        select id, after_seq from spend_reservations order by id`.execute(db);
      expect(rows.rows.map((row) => [row.id, Number(row.after_seq)])).toEqual([
        ["hold_first", 0],
        ["hold_mid", 5],
        ["hold_other_run", 0],
      ]);
    });
  });
});
