/**
 * Who a bearer token is and what it may do: a ServiceAccount bound (as deploy/kubernetes binds
 * `runyard-runner`) to a Role's rules in its own namespace, or the cluster's admin. The default
 * rules are read from deploy/kubernetes/runner-role.yaml, so the server enforces the Role that
 * operators apply and a verb missing from it fails here as it would on a cluster.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface Identity {
  /** As RBAC names it: `system:serviceaccount:NS:NAME`, or `kubernetes-admin`. */
  user: string;
  /** The namespace the Role is bound in; undefined for the admin (everything everywhere). */
  namespace?: string;
  rules: PolicyRule[];
}

// From test/k8s-api-server, or from its build under dist-bench/ (the benchmarks start the server too).
const roleFile =
  ["../../deploy/kubernetes/runner-role.yaml", "../../../deploy/kubernetes/runner-role.yaml"]
    .map((path) => fileURLToPath(new URL(path, import.meta.url)))
    .find((file) => existsSync(file)) ??
  fileURLToPath(new URL("../../deploy/kubernetes/runner-role.yaml", import.meta.url));

/** The rules of the Role `runyard-runner` in deploy/kubernetes/runner-role.yaml. */
export function runnerRoleRules(): PolicyRule[] {
  for (const document of parseAllDocuments(readFileSync(roleFile, "utf8"))) {
    const doc = document.toJS() as { kind?: string; metadata?: { name?: string }; rules?: PolicyRule[] };
    if (doc.kind === "Role" && doc.metadata?.name === "runyard-runner") return doc.rules ?? [];
  }
  throw new Error(`no Role runyard-runner in ${roleFile}`);
}

const admin: Identity = {
  user: "kubernetes-admin",
  rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }],
};
export const adminIdentity = (): Identity => structuredClone(admin);

const has = (list: string[] | undefined, value: string): boolean =>
  (list ?? []).includes("*") || (list ?? []).includes(value);

/**
 * Whether `identity` may `verb` the `resource` (with `/subresource`) of API group `group` in
 * `namespace` (undefined: cluster-scoped or across all namespaces).
 */
export function allowed(
  identity: Identity,
  verb: string,
  group: string,
  resource: string,
  namespace: string | undefined,
  name: string | undefined,
): boolean {
  if (identity.namespace !== undefined && namespace !== identity.namespace) return false;
  return identity.rules.some(
    (rule) =>
      has(rule.apiGroups, group) &&
      has(rule.resources, resource) &&
      has(rule.verbs, verb) &&
      (!rule.resourceNames?.length || (name !== undefined && rule.resourceNames.includes(name))),
  );
}
