import { type Kysely, PostgresDialect } from "kysely";
import { RunyardError } from "../core/errors.js";
import { redactedUrl } from "../core/redacted-url.js";
import { OutageClock } from "./connection-loss.js";
import { postgresDialect } from "./dialect.js";
import { createKyselyStore, type KyselyStoreOptions } from "./kysely-store.js";
import { pgDriver } from "./pg-driver.js";
import { ReconnectingKysely, reconnectingPool } from "./postgres-connections.js";
import type { Database } from "./schema.js";
import type { Store } from "./types.js";

export interface PostgresStoreOptions
  extends Pick<KyselyStoreOptions, "logger" | "now" | "secretKey" | "olderReplicaWaitMs"> {
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
  const outages = new OutageClock();
  const db = await connectPostgres(url, { ...opts, outages });
  // The replica's heartbeat on a connection of its own (KyselyStoreOptions.heartbeatDb).
  const heartbeatDb = await connectPostgres(url, { ...opts, poolSize: 1, outages }).catch(async (error) => {
    await db.destroy();
    throw error;
  });
  return createKyselyStore(db, postgresDialect, { ...opts, outages, heartbeatDb });
}

/**
 * A Kysely instance over a pool on `url`, once one connection has been made (STORE_UNREACHABLE
 * otherwise), not migrated: the store's opening path, and what `db copy` and `db status` read with.
 */
export async function connectPostgres(
  url: string,
  opts: Pick<PostgresStoreOptions, "logger" | "poolSize" | "connectTimeoutMs"> & {
    outages?: OutageClock;
  } = {},
): Promise<Kysely<Database>> {
  const pool = new (pgDriver().Pool)({
    connectionString: url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    // A connection whose server vanished without a word (a host gone, a partition) is found dead
    // by TCP keep-alive instead of waiting forever for an answer.
    keepAlive: true,
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
  const db = new ReconnectingKysely({
    dialect: new PostgresDialect({ pool: reconnectingPool(pool, opts.logger, opts.outages) }),
  });
  // Kysely ends the pool only once its driver started, at the first query. A Kysely that never
  // queried (the heartbeat connection of a replica refused at start, say for a wrong secret key)
  // kept the probe's idle connection, and with it the process, for the pool's idle timeout: the
  // refused server printed its error and exited 10 s later.
  const destroy = db.destroy.bind(db);
  db.destroy = async () => {
    await destroy();
    // `ending` from the moment end() is called: two destroys never end it twice.
    if (!pool.ending) await pool.end();
  };
  return db;
}

/** The URL without its password, for messages and logs. */
export function redactDatabaseUrl(url: string): string {
  return redactedUrl(url, "(a database URL that does not parse)");
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
