import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0030_version_promotion");

describe.each(migrationBackends)("the version promotion migration on %s", (backend) => {
  it("keeps every trigger running what it ran: stored versions promoted by their savers, schedules their version's saver's, runs written by their submitter", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      for (const version of [1, 2]) {
        await sql`insert into saved_workflows (tenant_id, name, version, workflow, file, created_at, created_by, unrestricted)
          values ('acme', 'rel', ${version}, 'x', 'rel.yaml', ${`2026-01-0${version}T00:00:00.000Z`}, ${`tok_${version}`}, 0)`.execute(
          db,
        );
      }
      await sql`insert into schedules (id, tenant_id, workflow_name, position, workflow_version, cron, timezone, overlap, catch_up, armed_at)
        values ('sch_1', 'acme', 'rel', 0, 2, '0 3 * * *', 'UTC', 'skip', 'latest', '2026-01-02T00:00:00.000Z')`.execute(
        db,
      );
      await sql`insert into runs (id, kind, name, status, created_by, spec, vars, steps, created_at)
        values ('run_1', 'workflow', 'rel', 'success', 'tok_9', '{}', '{}', '[]', '2026-01-03T00:00:00.000Z')`.execute(
        db,
      );
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const versions = await sql<{ version: number | string; promoted_at: string; promoted_by: string }>`
        select version, promoted_at, promoted_by from saved_workflows order by version`.execute(db);
      expect(versions.rows.map((row) => [Number(row.version), row.promoted_at, row.promoted_by])).toEqual([
        [1, "2026-01-01T00:00:00.000Z", "tok_1"],
        [2, "2026-01-02T00:00:00.000Z", "tok_2"],
      ]);
      const schedule = await sql<{ owner: string }>`select owner from schedules`.execute(db);
      expect(schedule.rows).toEqual([{ owner: "tok_2" }]);
      const run = await sql<{ authored_by: string }>`select authored_by from runs`.execute(db);
      expect(run.rows).toEqual([{ authored_by: "tok_9" }]);
    });
  });
});
