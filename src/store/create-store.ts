import { type FleetLink, localLink } from "./fleet-link.js";
import type { KyselyStoreOptions } from "./kysely-store.js";
import { openPostgresStore } from "./postgres.js";
import { postgresLink } from "./postgres-link.js";
import { openMemoryStore, openSqliteStore } from "./sqlite.js";
import type { Store } from "./types.js";

/** Where the store lives and how to open it. */
export interface StoreConfig
  extends Pick<KyselyStoreOptions, "logger" | "now" | "secretKey" | "olderReplicaWaitMs"> {
  /** `postgres://...` (RUNYARD_DATABASE_URL): PostgreSQL. Unset: SQLite. */
  databaseUrl?: string | undefined;
  /** The SQLite file when there is no database URL; unset as well: in memory, nothing persists. */
  sqlitePath?: string | undefined;
  /** Receives the in-memory store's warning. */
  warn?: (message: string) => void;
}

/** True for the URLs the PostgreSQL store takes. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** The one place a backend is chosen: PostgreSQL by URL, else the SQLite file, else memory. */
export async function createStore(config: StoreConfig): Promise<Store> {
  const { logger, now, secretKey } = config;
  if (config.databaseUrl) {
    const wait = config.olderReplicaWaitMs;
    return openPostgresStore(config.databaseUrl, {
      logger,
      now,
      secretKey,
      ...(wait !== undefined ? { olderReplicaWaitMs: wait } : {}),
    });
  }
  if (config.sqlitePath) return openSqliteStore(config.sqlitePath, { logger, now, secretKey });
  return openMemoryStore({ logger, now, warn: config.warn });
}

/** How the replicas of this store reach each other: LISTEN/NOTIFY on PostgreSQL, in-process otherwise. */
export function createFleetLink(
  config: Pick<StoreConfig, "databaseUrl" | "logger"> & { replicaId?: string },
): FleetLink {
  return config.databaseUrl ? postgresLink(config.databaseUrl, config.logger, config.replicaId) : localLink();
}
