import {
  createDatabase,
  findPostgresBin,
  postgresBinariesMissing,
  startPostgresCluster,
} from "./postgres-cluster.js";

export { findPostgresBin } from "./postgres-cluster.js";

/**
 * A throwaway PostgreSQL cluster for tests (see `postgres-cluster.ts`, which `npm run bench`
 * shares). Each test gets its own database (`createDatabase`), made from template0, which takes
 * milliseconds.
 */
export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly adminUrl: string;
  readonly port: number;
  /** A new, empty database; returns its URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Why PostgreSQL tests cannot run here, or undefined when they can. In CI the tests must not
 * skip: `describeOnPostgres` turns the reason into a failure there.
 */
export function postgresUnavailable(): string | undefined {
  if (process.env.RUNYARD_TEST_DATABASE_URL) return undefined;
  return postgresBinariesMissing();
}

/** Starts a cluster (or uses `RUNYARD_TEST_DATABASE_URL`'s server when set). */
export async function startTestPostgres(): Promise<TestPostgres> {
  const given = process.env.RUNYARD_TEST_DATABASE_URL;
  if (given) {
    return {
      adminUrl: given,
      port: Number(new URL(given).port || 5432),
      createDatabase: () => createTestDatabase(given),
      stop: async () => {},
    };
  }
  if (!findPostgresBin()) throw new Error(postgresUnavailable());
  const cluster = await startPostgresCluster({ inMemory: true });
  return {
    adminUrl: cluster.adminUrl,
    port: cluster.port,
    createDatabase: cluster.createDatabase,
    stop: cluster.stop,
  };
}

/** A new empty database on the cluster at `adminUrl`, from template0 (milliseconds); its URL. */
export function createTestDatabase(adminUrl: string): Promise<string> {
  return createDatabase(adminUrl);
}
