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
const before = names[names.indexOf("0039_bot_tenant_alerts") - 1] ?? "";

async function newLocation(backend: "sqlite" | "postgres"): Promise<DatabaseLocation> {
  if (backend === "postgres") return { dialect: "postgres", url: await createTestDatabase(adminUrl) };
  return {
    dialect: "sqlite",
    path: join(mkdtempSync(join(tmpdir(), "runyard-bot-tenant-alerts-")), "runyard.db"),
  };
}

describe.each(backends)("the tenant bot alerts migration on %s", (backend) => {
  it("adds one rule row per tenant and one hook count per bot and second, keeps the bots; down undoes it", async () => {
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
      await sql`insert into bots (id, owner, name, mode, spec, state, created_at, updated_at, expires_at)
        values ('bot_1', 'u', 'echo', 'image', 'x', 'running', '2026-01-01T00:00:00.000Z',
        '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z')`.execute(db);
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const rules = () =>
        sql`insert into tenant_bot_alerts (tenant_id, alerts, notify, updated_at)
          values ('acme', '[]', '[]', '2026-01-01T00:00:00.000Z')`.execute(db);
      await rules();
      await expect(rules()).rejects.toThrow();
      const hit = () =>
        sql`insert into bot_hook_hits (bot_id, second, count) values ('bot_1', 1780000000, 1)`.execute(db);
      await hit();
      await expect(hit()).rejects.toThrow();
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await expect(sql`select count(*) from tenant_bot_alerts`.execute(db)).rejects.toThrow();
      await expect(sql`select count(*) from bot_hook_hits`.execute(db)).rejects.toThrow();
      const kept = await sql<{ id: string }>`select id from bots`.execute(db);
      expect(kept.rows).toEqual([{ id: "bot_1" }]);
    } finally {
      await opened.close();
    }
  });
});
