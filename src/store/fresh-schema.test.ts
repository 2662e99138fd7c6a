import { type Kysely, sql } from "kysely";
import { describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers/cli.js";
import { madeSchema } from "./fresh-schema.js";
import { upgradeSchema } from "./schema-upgrade.js";
import { openSqliteDatabase } from "./sqlite.js";

/** Everything a database holds: its objects as SQLite states them, and every table's rows. */
async function contents(
  db: Kysely<unknown>,
): Promise<{ objects: unknown[]; rows: Record<string, unknown[]> }> {
  const { rows: objects } = await sql<{ type: string; name: string; tbl_name: string; sql: string | null }>`
    select type, name, tbl_name, sql from sqlite_master order by type, name`.execute(db);
  const rows: Record<string, unknown[]> = {};
  for (const object of objects) {
    if (object.type !== "table") continue;
    const found = await sql<Record<string, unknown>>`select * from ${sql.table(object.name)}`.execute(db);
    rows[object.name] = found.rows.map((row) => ({ ...row, timestamp: undefined, finished_at: undefined }));
  }
  return { objects, rows };
}

describe("a new SQLite store", () => {
  it("made from an earlier new one's schema holds what the migrations make step by step", async () => {
    const dir = tempDir();
    const open = (name: string) => openSqliteDatabase(`${dir}/${name}.db`) as Kysely<unknown>;
    const [reference, earlier, copied] = [open("reference"), open("earlier"), open("copied")];
    try {
      // Not empty, so migrated step by step; its placeholder goes after.
      await sql`create table placeholder (x)`.execute(reference);
      await upgradeSchema(reference, "sqlite");
      await sql`drop table placeholder`.execute(reference);
      // The process's first new store is migrated and remembered (or copied, if another was first);
      // the next is made from what was remembered.
      await upgradeSchema(earlier, "sqlite");
      expect(madeSchema()?.statements.length).toBeGreaterThan(40);
      await upgradeSchema(copied, "sqlite");
      expect(await contents(copied)).toEqual(await contents(reference));
      expect((await contents(copied)).rows.runyard_migration?.length).toBeGreaterThan(30);
      // Made now: its bookkeeping says so, not when the first one was migrated.
      const { rows } = await sql<{ timestamp: string }>`select timestamp from runyard_migration`.execute(
        copied,
      );
      for (const row of rows) expect(Date.parse(row.timestamp)).toBeGreaterThan(Date.now() - 60_000);
    } finally {
      await Promise.all([reference, earlier, copied].map((db) => db.destroy()));
    }
  });

  it("that already holds a table is migrated, not made over", async () => {
    const dir = tempDir();
    const db = openSqliteDatabase(`${dir}/old.db`) as Kysely<unknown>;
    try {
      await upgradeSchema(db, "sqlite");
      await sql`insert into runyard_migration_finished (name, finished_at) values ('kept', 'then')`.execute(
        db,
      );
      await upgradeSchema(db, "sqlite");
      const { rows } = await sql<{ name: string }>`select name from runyard_migration_finished`.execute(db);
      expect(rows.map((row) => row.name)).toContain("kept");
    } finally {
      await db.destroy();
    }
  });
});
