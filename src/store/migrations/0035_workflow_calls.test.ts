import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0035_workflow_calls");

describe.each(migrationBackends)("the workflow calls migration on %s", (backend) => {
  it("leaves stored runs without a parent, and lets a step have one child only", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into runs (id, kind, name, status, created_by, spec, vars, steps, created_at)
        values ('run_1', 'workflow', 'old', 'success', 'tok_1', '{}', '{}', '[]', '2026-01-03T00:00:00.000Z')`.execute(
        db,
      );
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const old = await sql<{ parent_run_id: string | null }>`select parent_run_id from runs`.execute(db);
      expect(old.rows).toEqual([{ parent_run_id: null }]);
      const child = (id: string) =>
        sql`insert into runs (id, kind, name, status, spec, vars, steps, created_at, parent_run_id, parent_step)
          values (${id}, 'workflow', 'c', 'queued', '{}', '{}', '[]', '2026-01-03T00:00:00.000Z', 'run_1', 'ship')`.execute(
          db,
        );
      await child("run_2");
      await expect(child("run_3")).rejects.toThrow();
      expect((await migrator.migrateDown()).error).toBeUndefined();
    });
  });
});
