/**
 * The resources the scripted API server serves, and the discovery documents (`/api`, `/apis`,
 * `/api/v1`, `/apis/GROUP/VERSION`, `/version`) that kubectl reads before it lists anything.
 */

export interface ResourceInfo {
  /** Plural, as in paths and RBAC rules: `jobs`. */
  resource: string;
  singular: string;
  kind: string;
  /** "" for the core group. */
  group: string;
  version: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Subresources served besides the object itself (`log` for pods). */
  subresources: string[];
  verbs: string[];
}

const objectVerbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

export const resources: ResourceInfo[] = [
  {
    resource: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    group: "",
    version: "v1",
    namespaced: false,
    shortNames: ["ns"],
    subresources: [],
    verbs: ["create", "delete", "get", "list", "watch"],
  },
  {
    resource: "pods",
    singular: "pod",
    kind: "Pod",
    group: "",
    version: "v1",
    namespaced: true,
    shortNames: ["po"],
    subresources: ["log"],
    verbs: objectVerbs,
  },
  {
    resource: "secrets",
    singular: "secret",
    kind: "Secret",
    group: "",
    version: "v1",
    namespaced: true,
    subresources: [],
    verbs: objectVerbs,
  },
  {
    resource: "jobs",
    singular: "job",
    kind: "Job",
    group: "batch",
    version: "v1",
    namespaced: true,
    subresources: [],
    verbs: objectVerbs,
  },
  {
    resource: "networkpolicies",
    singular: "networkpolicy",
    kind: "NetworkPolicy",
    group: "networking.k8s.io",
    version: "v1",
    namespaced: true,
    shortNames: ["netpol"],
    subresources: [],
    verbs: objectVerbs,
  },
];

export const apiVersionOf = (info: ResourceInfo): string =>
  info.group ? `${info.group}/${info.version}` : info.version;

export function findResource(group: string, version: string, resource: string): ResourceInfo | undefined {
  return resources.find((r) => r.group === group && r.version === version && r.resource === resource);
}

export function resourceOfKind(kind: string): ResourceInfo | undefined {
  return resources.find((r) => r.kind === kind);
}

const groups = [...new Set(resources.filter((r) => r.group).map((r) => `${r.group}/${r.version}`))];

/** The document at `path` when it is a discovery path, else undefined. */
export function discovery(path: string, serverAddress: string): unknown {
  if (path === "/version") {
    return {
      major: "1",
      minor: "33",
      gitVersion: "v1.33.0-scripted",
      gitCommit: "0000000000000000000000000000000000000000",
      gitTreeState: "clean",
      buildDate: "2025-04-23T00:00:00Z",
      goVersion: "go1.24.2",
      compiler: "gc",
      platform: "linux/amd64",
    };
  }
  if (path === "/api") {
    return {
      kind: "APIVersions",
      versions: ["v1"],
      serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
    };
  }
  if (path === "/apis") {
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: groups.map((gv) => {
        const [name, version] = gv.split("/") as [string, string];
        const entry = { groupVersion: gv, version };
        return { name, versions: [entry], preferredVersion: entry };
      }),
    };
  }
  const core = path === "/api/v1";
  const group = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
  if (!core && !group) {
    const only = /^\/apis\/([^/]+)$/.exec(path);
    const gv = only && groups.find((g) => g.startsWith(`${only[1]}/`));
    if (!gv) return undefined;
    const entry = { groupVersion: gv, version: gv.split("/")[1] };
    return { kind: "APIGroup", apiVersion: "v1", name: only[1], versions: [entry], preferredVersion: entry };
  }
  const groupName = core ? "" : group![1]!;
  const version = core ? "v1" : group![2]!;
  const served = resources.filter((r) => r.group === groupName && r.version === version);
  if (served.length === 0) return undefined;
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: core ? "v1" : `${groupName}/${version}`,
    resources: served.flatMap((r) => [
      {
        name: r.resource,
        singularName: r.singular,
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: r.verbs,
        ...(r.shortNames ? { shortNames: r.shortNames } : {}),
      },
      ...r.subresources.map((sub) => ({
        name: `${r.resource}/${sub}`,
        singularName: "",
        namespaced: r.namespaced,
        kind: sub === "log" ? r.kind : r.kind,
        verbs: ["get"],
      })),
    ]),
  };
}
