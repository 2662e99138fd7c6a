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
const before = names[names.indexOf("0035_workflow_calls") - 1] ?? "";

async function newLocation(backend: "sqlite" | "postgres"): Promise<DatabaseLocation> {
  if (backend === "postgres") return { dialect: "postgres", url: await createTestDatabase(adminUrl) };
  return { dialect: "sqlite", path: join(mkdtempSync(join(tmpdir(), "runyard-calls-")), "runyard.db") };
}

describe.each(backends)("the workflow calls migration on %s", (backend) => {
  it("leaves stored runs without a parent, and lets a step have one child only", async () => {
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
    } finally {
      await opened.close();
    }
  });
});
