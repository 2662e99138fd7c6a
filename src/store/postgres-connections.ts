import {
  Kysely,
  type PostgresCursor,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
  type Transaction,
} from "kysely";
import type pg from "pg";
import type { Logger } from "../core/logger.js";
import {
  codeOf,
  connectionLost,
  type OutageClock,
  refusedByServer,
  safeToRunAgain,
  storeUnavailable,
} from "./connection-loss.js";
import { preparedName } from "./prepared.js";
import type { Database } from "./schema.js";

/** PostgreSQL's answer to a prepared statement whose result columns changed (a migration ran). */
const cachedPlanChanged = "0A000";
/** A statement or transaction whose connection was lost is tried this many times in all. */
const attempts = 3;
/** Before another attempt: a new connection may need a moment (a failover's address moving). */
const retryDelayMs = [0, 200];

/** One of the pool's connections, with what the store's prepared statements know about it. */
interface Physical {
  client: pg.PoolClient;
  /** Hot statements this connection runs unnamed, their plan refused once (`cachedPlanChanged`). */
  unnamed: Set<string>;
  /** The connection reported an error: it goes back to the pool to be destroyed, not reused. */
  broken: boolean;
}

/**
 * The pool as Kysely sees it. Each connection Kysely holds is a logical one over a pool client:
 *
 * - Every client has an error listener from the moment it is handed out. node-postgres takes the
 *   pool's own listener off a client while it is checked out, so a connection that the server
 *   ends between two statements of a transaction would otherwise emit `error` unheard and end
 *   the process.
 * - A statement whose connection is lost outside a transaction runs again on a new connection
 *   when that is safe: a read, a statement that never reached the server, or one the server
 *   refused (shutting down, starting up, demoted to read-only). Otherwise, and inside a
 *   transaction, it fails with STORE_UNAVAILABLE, marked safe to run again when its transaction
 *   certainly did not commit (`ReconnectingKysely` does).
 * - The store's hot statements (`prepared.ts`) run as named prepared statements: each connection
 *   parses and plans one once, then only binds and executes it. Should a migration change the
 *   columns one returns, PostgreSQL refuses the cached plan; that connection runs that statement
 *   unnamed from then on.
 */
export function reconnectingPool(
  pool: pg.Pool,
  logger: Logger | undefined,
  outages: OutageClock | undefined,
): PostgresPool {
  const known = new WeakMap<pg.PoolClient, Physical>();
  const physicalOf = (client: pg.PoolClient): Physical => {
    const physical = known.get(client);
    if (physical) return physical;
    const made: Physical = { client, unnamed: new Set(), broken: false };
    client.on("error", (error) => {
      made.broken = true;
      logger?.debug({ err: error }, "a postgres connection in use was lost");
    });
    known.set(client, made);
    return made;
  };
  // The listener goes on as the pool hands a new client out, not once the caller has it: the
  // server's "terminating connection" can arrive in the very packet that completed the
  // connection, before the caller's code runs.
  pool.on("connect", (client) => physicalOf(client));

  const checkout = async (): Promise<Physical> => {
    try {
      return physicalOf(await pool.connect());
    } catch (error) {
      if (!connectionLost(error)) throw error;
      outages?.lost();
      throw storeUnavailable(error, false);
    }
  };

  const run = async (physical: Physical, sql: string, values: readonly unknown[]) => {
    const { client, unnamed } = physical;
    const name = preparedName(sql);
    if (name === undefined || unnamed.has(name)) return client.query(sql, [...values]);
    try {
      return await client.query({ name, text: sql, values: [...values] });
    } catch (error) {
      if (codeOf(error) !== cachedPlanChanged) throw error;
      unnamed.add(name);
      return client.query(sql, [...values]);
    }
  };

  const logical = (first: Physical): PostgresPoolClient => {
    let current: Physical | undefined = first;
    let inTransaction = false;
    /** The transaction's connection was lost: every statement but its rollback fails. */
    let transactionLost: Error | undefined;

    const release = (physical: Physical, error?: Error): void => {
      // A client that reported an error, or whose statement lost it, is destroyed, not pooled.
      physical.client.release(physical.broken || error ? (error ?? true) : undefined);
    };

    const statement = async (sql: string, values: readonly unknown[]): Promise<pg.QueryResult> => {
      const verb = sql.trimStart().slice(0, 20).toLowerCase();
      const opens = verb.startsWith("begin") || verb.startsWith("start transaction");
      const closes = verb.startsWith("commit") || verb.startsWith("rollback");
      // The server rolls a transaction back when its connection ends: a rollback has nothing to do.
      const rolledBack = (): pg.QueryResult => {
        inTransaction = false;
        transactionLost = undefined;
        return { command: "ROLLBACK", rowCount: 0, rows: [], oid: 0, fields: [] };
      };
      if (transactionLost) {
        if (closes) return rolledBack();
        throw storeUnavailable(transactionLost, false);
      }
      for (let attempt = 1; ; attempt += 1) {
        current ??= await checkout();
        const physical = current;
        const sent = !physical.broken;
        try {
          const result = await run(physical, sql, values);
          if (opens) inTransaction = true;
          if (closes) inTransaction = false;
          return result;
        } catch (error) {
          if (!connectionLost(error)) throw error;
          outages?.lost();
          physical.broken = true;
          if (verb.startsWith("rollback")) return rolledBack();
          // Not applied: never sent, or refused by the server; a socket that died under a
          // statement leaves a write's outcome unknown.
          const notApplied = !sent || refusedByServer(error);
          if (inTransaction || opens) {
            // The transaction is gone with its connection; it committed only if this was its
            // commit and the answer was lost, not refused.
            const committed = verb.startsWith("commit") && !notApplied ? "unknown" : false;
            inTransaction = !closes;
            if (inTransaction) transactionLost = error as Error;
            throw storeUnavailable(error, committed);
          }
          const read = verb.startsWith("select");
          current = undefined;
          release(physical, error as Error);
          if (!(read || notApplied)) throw storeUnavailable(error, "unknown");
          if (attempt >= attempts) throw storeUnavailable(error, false);
          const wait = retryDelayMs[attempt - 1] ?? 0;
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    };

    // Kysely passes a text and its values, or a cursor (`stream`), which goes as it is.
    function query<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>>;
    function query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
    function query<R>(
      sqlOrCursor: string | PostgresCursor<R>,
      parameters: readonly unknown[] = [],
    ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
      if (typeof sqlOrCursor === "string")
        return statement(sqlOrCursor, parameters) as Promise<PostgresQueryResult<R>>;
      if (!current) throw storeUnavailable(new Error("the connection was lost"), false);
      return current.client.query(sqlOrCursor as never) as PostgresCursor<R>;
    }
    return {
      query,
      release: () => {
        if (current) release(current);
        current = undefined;
      },
    };
  };

  return { connect: async () => logical(await checkout()), end: () => pool.end() };
}

/**
 * Kysely whose transactions run again, whole, when their connection was lost before they
 * committed (a restart or a failover of the database): their statements took no effect, and
 * the store's transactions do nothing but statements.
 */
export class ReconnectingKysely extends Kysely<Database> {
  override transaction() {
    const builder = super.transaction();
    const execute = builder.execute.bind(builder);
    builder.execute = async <T>(callback: (trx: Transaction<Database>) => Promise<T>): Promise<T> => {
      for (let attempt = 1; ; attempt += 1) {
        try {
          return await execute(callback);
        } catch (error) {
          if (attempt >= attempts || !safeToRunAgain(error)) throw error;
          const wait = retryDelayMs[attempt - 1] ?? 0;
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    };
    return builder;
  }
}
