import type { TestProject } from "vitest/node";
import { openPostgresStore } from "../../src/store/postgres.js";
import { postgresUnavailable, startTestPostgres } from "./postgres.js";
import { createDatabase } from "./postgres-cluster.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The test cluster's admin URL; empty when PostgreSQL is not available here (never in CI). */
    postgresAdminUrl: string;
    /**
     * A database of the cluster's that runyard's store migrated once for the run, its tables and
     * no rows: a store test's fresh database is copied from it rather than migrated again (the
     * migrations' own tests start from template0). Empty without PostgreSQL.
     */
    postgresMigrated: string;
  }
}

/**
 * Global setup of the unit project: one PostgreSQL cluster for the whole run, stopped at the
 * end. In CI a missing PostgreSQL fails the run; elsewhere the PostgreSQL tests skip and say why.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reason = postgresUnavailable();
  if (reason) {
    if (process.env.CI === "true") throw new Error(`PostgreSQL is required in CI: ${reason}`);
    process.stderr.write(`runyard tests: skipping the PostgreSQL store tests: ${reason}\n`);
    project.provide("postgresAdminUrl", "");
    project.provide("postgresMigrated", "");
    return async () => {};
  }
  const cluster = await startTestPostgres();
  project.provide("postgresAdminUrl", cluster.adminUrl);
  const migratedUrl = await createDatabase(cluster.adminUrl, "runyard_migrated", "template0", { keep: true });
  const store = await openPostgresStore(migratedUrl);
  await store.close();
  project.provide("postgresMigrated", new URL(migratedUrl).pathname.slice(1));
  return () => cluster.stop();
}
