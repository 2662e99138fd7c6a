import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { inject } from "vitest";
import type { Store } from "../../src/store/index.js";
import { openPostgresStore } from "../../src/store/postgres.js";
import { openSqliteStore } from "../../src/store/sqlite.js";
import { createDatabase } from "./postgres-cluster.js";

/** What a store test opens: a fresh, empty store of one backend. */
export interface StoreBackend {
  readonly name: "sqlite" | "postgres";
  /** Whether the backend can run here; PostgreSQL is always there in CI (the setup fails otherwise). */
  readonly available: boolean;
  /** A fresh, empty store; `reopen` opens the same database again (a second process, a restart). */
  open(opts?: { now?: () => Date; secretKey?: string }): Promise<TestStore>;
}

export interface TestStore {
  store: Store;
  reopen(opts?: { now?: () => Date; secretKey?: string }): Promise<Store>;
  /** Every byte the backend stored: SQLite's files, or each row of PostgreSQL's tables as text. */
  storedBytes(): Promise<Buffer>;
  /** Closes what `open` made and removes its files or database. */
  dispose(): Promise<void>;
}

const sqlite: StoreBackend = {
  name: "sqlite",
  available: true,
  async open(opts = {}) {
    const dir = mkdtempSync(join(tmpdir(), "runyard-store-"));
    const path = join(dir, "runyard.db");
    const store = await openSqliteStore(path, opts);
    return {
      store,
      reopen: (again = opts) => openSqliteStore(path, again),
      storedBytes: async () => Buffer.concat(readdirSync(dir).map((name) => readFileSync(join(dir, name)))),
      async dispose() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

const postgres: StoreBackend = {
  name: "postgres",
  available: inject("postgresAdminUrl") !== "",
  async open(opts = {}) {
    const url = await createDatabase(inject("postgresAdminUrl"), "runyard_test", inject("postgresMigrated"));
    const store = await openPostgresStore(url, { ...opts, poolSize: 4 });
    return {
      store,
      reopen: (again = opts) => openPostgresStore(url, { ...again, poolSize: 4 }),
      storedBytes: () => postgresRowsAsText(url),
      dispose: () => store.close(),
    };
  },
};

async function postgresRowsAsText(url: string): Promise<Buffer> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>(
      "select table_name as name from information_schema.tables where table_schema = 'public'",
    );
    const texts: string[] = [];
    for (const { name } of tables.rows) {
      const rows = await client.query<{ row: string }>(`select t::text as row from "${name}" t`);
      texts.push(...rows.rows.map((r) => r.row));
    }
    return Buffer.from(texts.join("\n"));
  } finally {
    await client.end();
  }
}

/**
 * The backends that can run here, for `describe.each(storeBackends)("on $name", ...)`. Outside
 * CI PostgreSQL may be missing (the global setup says so); in CI the setup fails instead.
 */
export const storeBackends: readonly StoreBackend[] = [sqlite, postgres].filter(
  (backend) => backend.available,
);
