import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import { migrations } from "./migrations/index.js";
import { openPostgresStore } from "./postgres.js";
import type { Store } from "./types.js";

const adminUrl = inject("postgresAdminUrl");
const opened: Store[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

async function query<T>(url: string, text: string): Promise<T[]> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    return (await pool.query(text)).rows as T[];
  } finally {
    await pool.end();
  }
}

describe.skipIf(!adminUrl)("openPostgresStore", () => {
  it("migrates an empty database once when several servers open it at the same moment", async () => {
    const url = await createTestDatabase(adminUrl);
    opened.push(...(await Promise.all([1, 2, 3, 4].map(() => openPostgresStore(url)))));
    const applied = await query<{ name: string }>(url, "select name from runyard_migration order by name");
    expect(applied.map((row) => row.name)).toEqual(Object.keys(migrations));
  });

  it("sorts text ids byte by byte, as SQLite does, whatever the database's locale", async () => {
    const url = await createTestDatabase(adminUrl);
    opened.push(await openPostgresStore(url));
    const rows = await query<{ collation_name: string }>(
      url,
      "select collation_name from information_schema.columns where table_name = 'runs' and column_name = 'id'",
    );
    expect(rows[0]?.collation_name).toBe("C");
  });

  it("refuses a database that a newer runyard migrated, saying to upgrade", async () => {
    const url = await createTestDatabase(adminUrl);
    await (await openPostgresStore(url)).close();
    const db = new Kysely<unknown>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }),
    });
    await sql`insert into runyard_migration (name, timestamp) values ('9999_future', '2099-01-01')`.execute(
      db,
    );
    await db.destroy();
    await expect(openPostgresStore(url)).rejects.toMatchObject({
      code: "STORE_TOO_NEW",
      message: expect.stringContaining("upgrade runyard"),
    });
  });

  it("stops with the host and a hint when the database cannot be reached", async () => {
    const port = new URL(adminUrl).port;
    const error = await openPostgresStore(
      `postgres://runyard:hunter2@127.0.0.1:${Number(port) + 1}/runyard`,
      {
        connectTimeoutMs: 2000,
      },
    ).catch((caught: unknown) => caught);
    expect(error).toMatchObject({
      code: "STORE_UNREACHABLE",
      message: expect.stringContaining(`127.0.0.1:${Number(port) + 1}`),
      hint: expect.stringContaining("RUNYARD_DATABASE_URL"),
    });
    expect((error as Error).message).not.toContain("hunter2");
  });
});
