import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { openPostgresStore } from "../../src/store/postgres.js";
import { openSqliteStore } from "../../src/store/sqlite.js";
import type { Store } from "../../src/store/types.js";
import { createTestDatabase } from "./postgres.js";

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
    const url = await createTestDatabase(inject("postgresAdminUrl"));
    const store = await openPostgresStore(url, { ...opts, poolSize: 4 });
    return {
      store,
      reopen: (again = opts) => openPostgresStore(url, { ...again, poolSize: 4 }),
      dispose: () => store.close(),
    };
  },
};

/** Both backends, for `describe.each(storeBackends)`; the unavailable one skips (never in CI). */
export const storeBackends: readonly StoreBackend[] = [sqlite, postgres];
