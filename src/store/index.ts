/*
 * The store's public surface: the `Store` interface and its records, and the constructors of
 * each backend. The server imports from here only.
 */
export { createStore, isPostgresUrl, type StoreConfig } from "./create-store.js";
export { postgresDialect, type StoreDialect, sqliteDialect } from "./dialect.js";
export { createKyselyStore, type KyselyStoreOptions } from "./kysely-store.js";
export { servesEveryTenant, servesTenant } from "./placement.js";
export { openPostgresStore, type PostgresStoreOptions, redactDatabaseUrl } from "./postgres.js";
export type { Database } from "./schema.js";
export {
  inMemoryWarning,
  type MemoryStoreOptions,
  openMemoryStore,
  openSqliteStore,
  type SqliteStoreOptions,
} from "./sqlite.js";
export * from "./types.js";
