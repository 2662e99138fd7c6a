import type { Kysely, SelectQueryBuilder } from "kysely";
import { sql } from "kysely";
import type { ColumnCipher } from "./column-cipher.js";
import { codeOf } from "./connection-loss.js";
import type { Database } from "./schema.js";

/**
 * The few things that differ between SQLite and PostgreSQL. Every query of the store is
 * shared; where a dialect needs its own SQL, the query asks its `StoreDialect`.
 */
export interface StoreDialect {
  readonly name: "sqlite" | "postgres";
  /**
   * Applied to the claim query's candidate subquery. PostgreSQL locks the row and lets other
   * claimers skip it (`for update skip locked`); SQLite needs nothing, as the claim is one
   * `update` statement and SQLite runs one writer at a time.
   */
  lockClaimCandidate<DB, TB extends keyof DB, O>(
    query: SelectQueryBuilder<DB, TB, O>,
  ): SelectQueryBuilder<DB, TB, O>;
  /** Which constraint a driver error broke, if it is a constraint error the store translates. */
  constraintViolation(error: unknown): "unique" | "foreign_key" | undefined;
  /**
   * Holds a lock named `key` until the transaction `trx` ends, so read-then-write checks (a
   * quota) of concurrent transactions run one after the other. PostgreSQL takes a transaction
   * advisory lock; SQLite needs none, as it runs one write transaction at a time.
   */
  lockUntilCommit(trx: Kysely<Database>, key: string): Promise<void>;
}

/** What every query function runs with. */
export interface StoreContext {
  db: Kysely<Database>;
  dialect: StoreDialect;
  /** The store's clock; tests replace it. */
  now: () => Date;
  /**
   * Seals the columns that may hold secrets: runs' spec and vars, jobs' payload and result,
   * artifacts' content, bots' spec and last logs.
   */
  cipher: ColumnCipher;
  /**
   * Set once a newer runyard made the database unwritable for this replica (`schema.refuseWrites`):
   * the bookkeeping writes reads would make (a token's `last_used_at`) are skipped.
   */
  writes?: { refused: boolean };
}

/** Runs a write whose unique key may be taken already: that violation is thrown as `taken(cause)`. */
export async function writeUnique<T>(
  ctx: Pick<StoreContext, "dialect">,
  write: () => Promise<T>,
  taken: (cause: unknown) => Error,
): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw ctx.dialect.constraintViolation(error) === "unique" ? taken(error) : error;
  }
}

export const sqliteDialect: StoreDialect = {
  name: "sqlite",
  lockClaimCandidate: (query) => query,
  lockUntilCommit: async () => undefined,
  constraintViolation(error) {
    const code = codeOf(error);
    if (code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE") return "unique";
    if (code === "SQLITE_CONSTRAINT_FOREIGNKEY") return "foreign_key";
    return undefined;
  },
};

/**
 * PostgreSQL (`openPostgresStore`). Its claim is the same statement with a locked candidate:
 *
 *   update jobs set status = 'assigned', runner_id = $1, lease_expires_at = $2, updated_at = $3
 *   where status = 'queued' and id = (
 *     select c.id from jobs c where c.status = 'queued' and <group, tenant, labels match>
 *     order by c.created_at, c.id limit 1 for update skip locked)
 *   returning *
 *
 * Its text columns are `collate "C"` (migrations/column-types.ts), so text order is byte order.
 */
export const postgresDialect: StoreDialect = {
  name: "postgres",
  lockClaimCandidate: (query) => query.forUpdate().skipLocked(),
  async lockUntilCommit(trx, key) {
    await sql`select pg_advisory_xact_lock(hashtext(${key}))`.execute(trx);
  },
  constraintViolation(error) {
    const code = codeOf(error);
    if (code === "23505") return "unique";
    if (code === "23503") return "foreign_key";
    return undefined;
  },
};
