import type { Principal } from "../auth.js";

/**
 * Who may answer an approval step: a listed approver of the run's tenant, and nobody else.
 * `alice` is the user alice; `role:admin` any admin of the run's tenant (for a run outside any
 * tenant: a platform admin, the admin token included); `role:member` anyone of the run's tenant.
 * A platform admin is not an approver of a tenant's run: the tenant's people decide (the admin
 * may still cancel the run). Returns the entry of `approvers` that lets the caller answer.
 */
export function approverEntry(
  principal: Principal | undefined,
  runTenant: string | null,
  approvers: readonly string[],
): string | undefined {
  if (!principal || principal.kind === "stream" || principal.kind === "runner") return undefined;
  if (principal.tenant_id !== runTenant) return undefined;
  return approvers.find((entry) => {
    if (entry === "role:member") return true;
    if (entry === "role:admin") return principal.role === "admin";
    return principal.username !== null && entry === principal.username;
  });
}

/** The name an answer is recorded under: the user, else the API token that gave it. */
export function answeredBy(principal: Principal): string {
  return principal.username ?? `token ${principal.token_id ?? "unknown"}`;
}

/** `alice, role:admin of tenant acme`: who may answer, as an error's hint says it. */
export function approversText(approvers: readonly string[], runTenant: string | null): string {
  const whose = runTenant === null ? "outside any tenant" : `of tenant ${runTenant}`;
  return `${approvers.join(", ")} (${whose})`;
}
