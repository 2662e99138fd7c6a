import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0043_budget_platform_bound");

describe.each(migrationBackends)("the platform-bound budgets migration on %s", (backend) => {
  it("keeps the budgets stored before it, each bound to nobody, and goes back down", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into budgets (scope, subject, usd_per_day, usd_per_month, updated_at, updated_by)
        values ('user', 'ana', 5, null, '2026-11-01T00:00:00.000Z', 'root')`.execute(db);
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const rows = await sql<{ subject: string; usd_per_day: number; platform_bound: number }>`
        select subject, usd_per_day, platform_bound from budgets`.execute(db);
      expect(rows.rows.map((row) => ({ ...row, platform_bound: Number(row.platform_bound) }))).toEqual([
        { subject: "ana", usd_per_day: 5, platform_bound: 0 },
      ]);
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
    });
  });
});
