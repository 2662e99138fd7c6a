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
const before = names[names.indexOf("0034_run_retries") - 1] ?? "";

async function newLocation(backend: "sqlite" | "postgres"): Promise<DatabaseLocation> {
  if (backend === "postgres") return { dialect: "postgres", url: await createTestDatabase(adminUrl) };
  return { dialect: "sqlite", path: join(mkdtempSync(join(tmpdir(), "runyard-retries-")), "runyard.db") };
}

describe.each(backends)("the run retries migration on %s", (backend) => {
  it("leaves every stored run a run of its own, and goes down and up again", async () => {
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
        values ('run_1', 'workflow', 'rel', 'failed', 'tok_9', '{}', '{}', '[]', '2026-01-03T00:00:00.000Z')`.execute(
        db,
      );
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const run = await sql<{ retry_of: string | null; retry_from: string | null }>`
        select retry_of, retry_from from runs`.execute(db);
      expect(run.rows).toEqual([{ retry_of: null, retry_from: null }]);
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
    } finally {
      await opened.close();
    }
  });
});
