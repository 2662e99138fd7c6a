import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import { migrations } from "./migrations/index.js";
import { connectPostgres, openPostgresStore } from "./postgres.js";
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
    await sql`update runyard_migration_state set writers_from = 9999, writers_version = 'runyard 9.0.0'`.execute(
      db,
    );
    await db.destroy();
    await expect(openPostgresStore(url)).rejects.toMatchObject({
      code: "STORE_TOO_NEW",
      message: expect.stringMatching(/migration 9999_future.*runyard 9\.0\.0 or later.*upgrade this replica/),
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

describe.skipIf(!adminUrl)("a replica's heartbeat on PostgreSQL", () => {
  it("is written while every pooled connection waits: it has a connection of its own", async () => {
    const url = await createTestDatabase(adminUrl);
    const store = await openPostgresStore(url, { poolSize: 1 });
    opened.push(store);
    const replica = { id: "busy", hostname: "h", url: null, version: "test", schema_level: 45 };
    await store.fleet.heartbeat(replica);
    // The pool's one connection waits on a lock another session holds (a busy database).
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    try {
      await locker.query("begin; lock table runs in access exclusive mode");
      let listed = false;
      const waiting = store.runs.listByStatus(["running"]).then(() => {
        listed = true;
      });
      await vi.waitFor(
        async () => {
          const { rows } = await locker.query<{ n: number }>(
            "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()",
          );
          if (rows[0]?.n !== 1) throw new Error("the store's read is not waiting yet");
        },
        { timeout: 10_000, interval: 20 },
      );
      expect(await store.fleet.heartbeat(replica, { ifPresent: true })).toBe(true);
      expect(listed).toBe(false);
      await locker.query("commit");
      await waiting;
    } finally {
      await locker.end();
    }
  });
});

describe.skipIf(!adminUrl)("a PostgreSQL connection lost under the store", () => {
  /** Ends every other session on the database, as a restart or `pg_terminate_backend` does. */
  async function terminateSessions(url: string): Promise<number> {
    const rows = await query<{ ended: boolean }>(
      url,
      "select pg_terminate_backend(pid) as ended from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    return rows.filter((row) => row.ended).length;
  }

  async function sessions(url: string): Promise<number> {
    const rows = await query<{ n: string }>(
      url,
      "select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    return Number(rows[0]?.n);
  }

  it("runs a transaction again, whole, when its connection is ended between two of its statements", async () => {
    const url = await createTestDatabase(adminUrl);
    const db = await connectPostgres(url);
    try {
      let attempts = 0;
      const result = await db.transaction().execute(async (trx) => {
        attempts++;
        await sql`select 1`.execute(trx);
        if (attempts === 1) {
          expect(await terminateSessions(url)).toBeGreaterThan(0);
          // The server's word arrives while the connection sits idle in the transaction: it is
          // heard (no unhandled 'error' ends the process), and the next statement fails.
          while ((await sessions(url)) > 0) await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return (await sql<{ n: number }>`select 2 as n`.execute(trx)).rows[0]?.n;
      });
      expect(result).toBe(2);
      expect(attempts).toBe(2);
    } finally {
      await db.destroy();
    }
  });

  it("answers reads and writes after every pooled connection was ended", async () => {
    const url = await createTestDatabase(adminUrl);
    const store = await openPostgresStore(url);
    opened.push(store);
    await store.events.lastSeq("warm-up");
    await terminateSessions(url);
    // The pool's idle connections are dead: the read goes to a new one.
    expect(await store.runs.get("run_none")).toBeUndefined();
    await terminateSessions(url);
    expect(await store.audit.prune(new Date(0).toISOString())).toBe(0);
  });

  it("takes a primary turned read-only (a failover's demoted primary) for a lost database, and writes again once it is writable", async () => {
    const url = await createTestDatabase(adminUrl);
    const name = new URL(url).pathname.slice(1);
    const store = await openPostgresStore(url);
    opened.push(store);
    await query(adminUrl, `alter database ${name} set default_transaction_read_only = on`);
    await terminateSessions(url);
    const refused = await store.tokens
      .create({ kind: "admin", name: "while read-only" })
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: "STORE_UNAVAILABLE", status: 503 });
    expect(store.outages.lastLost()).toBeGreaterThan(0);
    await query(adminUrl, `alter database ${name} reset default_transaction_read_only`);
    // The read-only connections were dropped, not pooled: the next write gets a writable one.
    const made = await store.tokens.create({ kind: "admin", name: "writable again" });
    expect(made.secret).toBeTruthy();
  });
});
