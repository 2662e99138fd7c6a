import type { TestProject } from "vitest/node";
import { postgresUnavailable, startTestPostgres } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The test cluster's admin URL; empty when PostgreSQL is not available here (never in CI). */
    postgresAdminUrl: string;
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
    return async () => {};
  }
  const cluster = await startTestPostgres();
  project.provide("postgresAdminUrl", cluster.adminUrl);
  return () => cluster.stop();
}
