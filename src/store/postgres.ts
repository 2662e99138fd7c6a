import {
  Kysely,
  type PostgresCursor,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
} from "kysely";
import pg from "pg";
import { RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { postgresDialect } from "./dialect.js";
import { createKyselyStore } from "./kysely-store.js";
import { preparedName } from "./prepared.js";
import type { Database } from "./schema.js";
import type { Store } from "./types.js";

export interface PostgresStoreOptions {
  logger?: Logger;
  /** The store's clock; tests replace it. */
  now?: () => Date;
  /** Encrypts what may hold secrets at rest; see `KyselyStoreOptions.secretKey`. */
  secretKey?: string;
  /** Connections this process keeps open at most. Default 10. */
  poolSize?: number;
  /** How long a first connection may take before start-up gives up. Default 10000 ms. */
  connectTimeoutMs?: number;
}

/**
 * The store in a PostgreSQL database (`postgres://user:password@host:port/db`), migrated on
 * open. Any number of processes may open the same database: migrations run under an advisory
 * lock (Kysely's migrator holds `pg_advisory_lock`), and claims lock their row.
 */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<Store> {
  return createKyselyStore(await connectPostgres(url, opts), postgresDialect, opts);
}

/**
 * A Kysely instance over a pool on `url`, once one connection has been made (STORE_UNREACHABLE
 * otherwise), not migrated: the store's opening path, and what `db copy` and `db status` read with.
 */
export async function connectPostgres(
  url: string,
  opts: Pick<PostgresStoreOptions, "logger" | "poolSize" | "connectTimeoutMs"> = {},
): Promise<Kysely<Database>> {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
  });
  // An idle client whose server went away emits `error` on the pool; without a listener that
  // would end the process. The next query gets a fresh connection (or fails with the reason).
  pool.on("error", (error) => opts.logger?.warn({ err: error }, "postgres connection lost"));
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => {});
    throw unreachable(url, error);
  }
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingHotStatements(pool) }) });
}

/** PostgreSQL's answer to a prepared statement whose result columns changed (a migration ran). */
const cachedPlanChanged = "0A000";

/**
 * The pool as Kysely sees it, its clients running the store's hot statements (`prepared.ts`) as
 * named prepared statements: each connection parses and plans one once, then only binds and
 * executes it. Should a migration change the columns one returns, PostgreSQL refuses the cached
 * plan; that connection runs that statement unnamed from then on.
 */
function preparingHotStatements(pool: pg.Pool): PostgresPool {
  const clients = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const preparing = (client: pg.PoolClient): PostgresPoolClient => {
    const unnamed = new Set<string>();
    const run = async (sql: string, values: readonly unknown[]) => {
      const name = preparedName(sql);
      if (name === undefined || unnamed.has(name)) return client.query(sql, [...values]);
      try {
        return await client.query({ name, text: sql, values: [...values] });
      } catch (error) {
        if ((error as { code?: unknown }).code !== cachedPlanChanged) throw error;
        unnamed.add(name);
        return client.query(sql, [...values]);
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
        return run(sqlOrCursor, parameters) as Promise<PostgresQueryResult<R>>;
      return client.query(sqlOrCursor as never) as PostgresCursor<R>;
    }
    return { query, release: () => client.release() };
  };
  return {
    async connect() {
      const client = await pool.connect();
      let wrapped = clients.get(client);
      if (!wrapped) {
        wrapped = preparing(client);
        clients.set(client, wrapped);
      }
      return wrapped;
    },
    end: () => pool.end(),
  };
}

/** The URL without its password, for messages and logs. */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(a database URL that does not parse)";
  }
}

function unreachable(url: string, error: unknown): RunyardError {
  let host = "(unknown host)";
  try {
    const parsed = new URL(url);
    host = `${parsed.hostname}:${parsed.port || "5432"}`;
  } catch {}
  const reason = error instanceof Error ? error.message : String(error);
  return new RunyardError(
    "STORE_UNREACHABLE",
    `cannot reach the PostgreSQL database at ${host} (${redactDatabaseUrl(url)}): ${reason}`,
    { cause: error },
  );
}
