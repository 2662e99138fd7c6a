import { RunyardError } from "../../core/errors.js";
import type { SecretsRepo } from "../../store/index.js";

/** What a run takes from the secrets store: the values found, and the names that were not. */
export interface ResolvedSecrets {
  values: Record<string, string>;
  missing: string[];
}

/**
 * The stored values of `names` for a run of `tenantId`. Read when a run starts and again when it
 * is resumed, never copied into the run: a secret removed or rotated reaches the next run (and a
 * resumed one) as it is in the store then. Shared by every run kind that names secrets.
 */
export async function resolveStoredSecrets(
  secrets: Pick<SecretsRepo, "values">,
  tenantId: string | null,
  names: readonly string[],
): Promise<ResolvedSecrets> {
  const values = await secrets.values(tenantId, names);
  return { values, missing: names.filter((name) => !(name in values)) };
}

/** The error of a run that names secrets its tenant has not stored. */
export function secretsMissing(missing: readonly string[], tenantId: string | null): RunyardError {
  const list = missing.join(", ");
  const whose = tenantId === null ? "outside any tenant" : `for tenant ${tenantId}`;
  const first = missing[0] ?? "NAME";
  return new RunyardError(
    "SECRET_MISSING",
    `secrets: ${list} ${missing.length === 1 ? "is" : "are"} not stored ${whose}, nor given as ${missing.length === 1 ? "a variable" : "variables"}`,
    {
      hint: `Store ${missing.length === 1 ? "it" : "each"} with \`runyard secret set ${first}\` (the value on stdin) using a token ${tenantId === null ? "outside any tenant" : `of tenant ${tenantId}`}, or give it as a variable (--var, vars:); a name a step exports goes in that step's expect_vars.`,
    },
  );
}
