import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0034_run_retries");

describe.each(migrationBackends)("the run retries migration on %s", (backend) => {
  it("leaves every stored run a run of its own, and goes down and up again", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into runs (id, kind, name, status, created_by, spec, vars, steps, created_at)
        values ('run_1', 'workflow', 'rel', 'failed', 'tok_9', '{}', '{}', '[]', '2026-01-03T00:00:00.000Z')`.execute(
        db,
      );
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const run = await sql<{ retry_of: string | null; retry_from: string | null }>`
        select retry_of, retry_from from runs`.execute(db);
      expect(run.rows).toEqual([{ retry_of: null, retry_from: null }]);
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
    });
  });
});
