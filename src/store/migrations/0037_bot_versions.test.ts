import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0037_bot_versions");

describe.each(migrationBackends)("the bot versions migration on %s", (backend) => {
  it("keeps every bot, at version 1 without a health report; versions are unique per bot; down undoes it", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into bots (id, owner, name, mode, spec, state, created_at, updated_at, expires_at)
        values ('bot_1', 'u', 'echo', 'image', 'x', 'running', '2026-01-01T00:00:00.000Z',
        '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z')`.execute(db);
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const bots = await sql<{ version: number | string; health: string | null }>`
        select version, health from bots`.execute(db);
      expect(bots.rows.map((row) => [Number(row.version), row.health])).toEqual([[1, null]]);
      const insert = () =>
        sql`insert into bot_versions (bot_id, version, state, reason, summary, created_at)
          values ('bot_1', 1, 'live', 'start', '{}', '2026-01-01T00:00:00.000Z')`.execute(db);
      await insert();
      await expect(insert()).rejects.toThrow();
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await expect(sql`select count(*) from bot_versions`.execute(db)).rejects.toThrow();
      const kept = await sql<{ id: string }>`select id from bots`.execute(db);
      expect(kept.rows).toEqual([{ id: "bot_1" }]);
    });
  });
});
