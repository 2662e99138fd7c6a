import type { ClaimingRunner } from "./job-records.js";

/**
 * Which runners may take a tenant's work (docs/security.md), the rule `jobs.claim` applies in
 * SQL and that the server states when it explains a queued run. A runner of a tenant serves that
 * tenant alone, never work outside every tenant (whose secrets are the platform's); a runner
 * outside every tenant serves work outside every tenant, and every tenant's too only when the
 * operator shared it and it isolates each run.
 */
export function servesEveryTenant(
  runner: Pick<ClaimingRunner, "tenant_id" | "shared" | "isolation">,
): boolean {
  return runner.tenant_id === null && runner.shared && runner.isolation !== "none";
}

/** Whether `runner` may take work of `tenantId` (null: work outside every tenant). */
export function servesTenant(
  runner: Pick<ClaimingRunner, "tenant_id" | "shared" | "isolation">,
  tenantId: string | null,
): boolean {
  if (runner.tenant_id !== null) return runner.tenant_id === tenantId;
  return tenantId === null || servesEveryTenant(runner);
}
