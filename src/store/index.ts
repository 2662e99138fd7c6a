/*
 * The store's public surface: `Store`, its repositories and their records, and the constructors
 * of each backend. The server imports from here only.
 */

export type * from "./agent-usage.js";
export type * from "./approvals.js";
export type * from "./artifacts.js";
export type * from "./audit.js";
export * from "./bot-history.js";
export type * from "./bot-versions.js";
export type * from "./bots.js";
export type * from "./budgets.js";
export type * from "./concurrency-slots.js";
export { createStore, isPostgresUrl, type StoreConfig } from "./create-store.js";
export { postgresDialect, type StoreDialect, sqliteDialect } from "./dialect.js";
export type * from "./forges.js";
export type * from "./hooks.js";
export type * from "./idempotency-keys.js";
export type * from "./job-records.js";
export { createKyselyStore, type KyselyStoreOptions } from "./kysely-store.js";
export { servesEveryTenant, servesTenant } from "./placement.js";
export { openPostgresStore, type PostgresStoreOptions, redactDatabaseUrl } from "./postgres.js";
export type * from "./run-events.js";
export type * from "./run-records.js";
export type * from "./runners.js";
export type * from "./runs.js";
export type * from "./saved-workflows.js";
export type * from "./schedules.js";
export type { Database } from "./schema.js";
export type * from "./secrets.js";
export type * from "./server-keys.js";
export type * from "./spend-reservations.js";
export {
  inMemoryWarning,
  type MemoryStoreOptions,
  openMemoryStore,
  openSqliteStore,
  type SqliteStoreOptions,
} from "./sqlite.js";
export type * from "./tenant-bot-alerts.js";
export type * from "./tokens.js";
export * from "./types.js";
export type * from "./users.js";
