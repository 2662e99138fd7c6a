/**
 * deploy/kubernetes/, checked offline (no cluster, no network): every YAML document there is
 * validated against the Kubernetes 1.33 OpenAPI schemas shipped by kubernetes-models, no field is
 * one those schemas do not know, and the manifests keep the promises docs/scale.md and
 * deploy/kubernetes/README.md make. It lives in src/ so that the fast unit project runs it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import type { IRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer as Container } from "kubernetes-models/v1/Container";
import type { IPodSpec as PodSpec } from "kubernetes-models/v1/PodSpec";
import type { ISecret } from "kubernetes-models/v1/Secret";
import type { IService } from "kubernetes-models/v1/Service";
import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { kubeSchemaProblems as problems } from "../test/helpers/kube-schema.js";
import { ConfigError, loadConfig } from "./core/config.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const dir = join(root, "deploy", "kubernetes");

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  [field: string]: unknown;
}

/** One document of a file, with where it came from. */
interface Loaded {
  file: string;
  doc: Manifest;
}

const yamlFiles = readdirSync(dir)
  .filter((name) => /\.ya?ml$/.test(name))
  .sort();

/** Every document of every YAML file in deploy/kubernetes/, parse errors failing the test. */
const loaded: Loaded[] = yamlFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(join(dir, file), "utf8")).map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]!.message}`);
    return { file, doc: document.toJS() as Manifest };
  }),
);

/** The documents `kubectl apply -k` applies: all but the kustomization itself. */
const resources = loaded.filter((entry) => entry.file !== "kustomization.yaml");

function find<T>(kind: string, name: string): T {
  const entry = resources.find((r) => r.doc.kind === kind && r.doc.metadata?.name === name);
  if (!entry) throw new Error(`no ${kind} ${name} in deploy/kubernetes/`);
  return entry.doc as T;
}

const server = find<IDeployment>("Deployment", "runyard-server");
const runner = find<IDeployment>("Deployment", "runyard-runner");
const service = find<IService>("Service", "runyard");
const secret = find<ISecret>("Secret", "runyard-secrets");
const config = find<IConfigMap>("ConfigMap", "runyard-config");
const pdb = find<IPodDisruptionBudget>("PodDisruptionBudget", "runyard-server");
const runnerAccount = find<IServiceAccount>("ServiceAccount", "runyard-runner");
const runnerRole = find<IRole>("Role", "runyard-runner");
const runnerBinding = find<IRoleBinding>("RoleBinding", "runyard-runner");

const podSpec = (deployment: IDeployment): PodSpec => deployment.spec!.template.spec!;
const onlyContainer = (deployment: IDeployment): Container => {
  expect(podSpec(deployment).containers).toHaveLength(1);
  return podSpec(deployment).containers[0]!;
};
/** `port` of a probe, a named port resolved against the container's ports. */
const portNumber = (container: Container, port: number | string): number | undefined =>
  typeof port === "number" ? port : container.ports?.find((p) => p.name === port)?.containerPort;
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}): boolean =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);
/** The env entries of a container that come from a Secret: name -> [secret, key]. */
const fromSecrets = (container: Container): Record<string, [string, string]> =>
  Object.fromEntries(
    (container.env ?? []).flatMap((e) =>
      e.valueFrom?.secretKeyRef
        ? [[e.name, [e.valueFrom.secretKeyRef.name ?? "", e.valueFrom.secretKeyRef.key]]]
        : [],
    ),
  );

describe("deploy/kubernetes manifests", () => {
  it("every YAML file parses, and every document is valid against the Kubernetes 1.33 schemas with no unknown field", () => {
    expect(yamlFiles.length).toBeGreaterThanOrEqual(7);
    for (const { file, doc } of resources) {
      expect(problems(doc), `${file}: ${doc.kind} ${doc.metadata?.name}`).toEqual([]);
    }
  });

  it.each([
    ["replicas as a word", (d: IDeployment) => Object.assign(d.spec!, { replicas: "two" }), "/spec/replicas"],
    [
      "a container without a name",
      (d: IDeployment) => Reflect.deleteProperty(podSpec(d).containers[0]!, "name"),
      "/spec/template/spec/containers/0",
    ],
    [
      "an image pull policy that does not exist",
      (d: IDeployment) => Object.assign(podSpec(d).containers[0]!, { imagePullPolicy: "Sometimes" }),
      "/spec/template/spec/containers/0/imagePullPolicy",
    ],
    [
      "a probe port out of range",
      (d: IDeployment) => Object.assign(podSpec(d).containers[0]!.livenessProbe!.httpGet!, { port: 2 ** 40 }),
      "/spec/template/spec/containers/0/livenessProbe/httpGet/port",
    ],
    [
      "a misspelt field (readinesProbe)",
      (d: IDeployment) => {
        const container = podSpec(d).containers[0]!;
        Object.assign(container, { readinesProbe: container.readinessProbe });
        Reflect.deleteProperty(container, "readinessProbe");
      },
      "/spec/template/spec/containers/0/readinesProbe",
    ],
    [
      "a misplaced field (replicas in the pod spec)",
      (d: IDeployment) => Object.assign(podSpec(d), { replicas: 2 }),
      "/spec/template/spec/replicas",
    ],
  ])("rejects a broken server Deployment: %s", (_, breakIt, path) => {
    const broken = structuredClone(server) as IDeployment;
    breakIt(broken);
    const found = problems(broken as unknown as Manifest);
    expect(found.length).toBeGreaterThan(0);
    expect(found.some((line) => line.startsWith(`${path} `))).toBe(true);
  });

  it("rejects a Service without a port number and a kind it has no schema for", () => {
    const broken = structuredClone(service) as IService;
    Reflect.deleteProperty(broken.spec!.ports![0]!, "port");
    expect(problems(broken as unknown as Manifest).join("\n")).toMatch(/port/);
    expect(problems({ apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name: "x" } })).toEqual([
      "no schema for apps/v1 StatefulSet: add its model to `models`",
    ]);
  });

  it("the kustomization lists every manifest file, and only those", () => {
    const kustomization = z
      .object({
        apiVersion: z.literal("kustomize.config.k8s.io/v1beta1"),
        kind: z.literal("Kustomization"),
        namespace: z.string().optional(),
        resources: z.array(z.string()),
      })
      .strict()
      .parse(loaded.find((entry) => entry.file === "kustomization.yaml")?.doc);
    expect([...kustomization.resources].sort()).toEqual(yamlFiles.filter((f) => f !== "kustomization.yaml"));
  });

  it("runs `runyard server` as 2 replicas on 0.0.0.0:8088 with an emptyDir home, alive on /health and ready on /health/ready", () => {
    expect(server.spec!.replicas).toBe(2);
    const container = onlyContainer(server);
    // No command: the image's entrypoint (`tini -- runyard`) runs these arguments.
    expect(container.command).toBeUndefined();
    const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--", "runyard"\]$/m);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(container.args?.join(" ")).toBe("server --host 0.0.0.0 --port 8088 --home /var/lib/runyard");
    expect(container.ports).toContainEqual(expect.objectContaining({ containerPort: 8088, name: "http" }));
    expect(container.livenessProbe?.httpGet?.path).toBe("/health");
    expect(container.startupProbe?.httpGet?.path).toBe("/health");
    // Not ready while the replica cannot reach its database; alive all the same.
    expect(container.readinessProbe?.httpGet?.path).toBe("/health/ready");
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
      expect(portNumber(container, probe!.httpGet!.port)).toBe(8088);
    }
    const home = container.volumeMounts?.find((m) => m.mountPath === "/var/lib/runyard");
    const volume = podSpec(server).volumes?.find((v) => v.name === home?.name);
    expect(volume?.emptyDir).toBeDefined();
    expect(home?.readOnly).not.toBe(true);
  });

  it("gives the servers their database URL, secret key and admin token from the Secret, and runners their token", () => {
    expect(fromSecrets(onlyContainer(server))).toEqual({
      RUNYARD_DATABASE_URL: ["runyard-secrets", "database-url"],
      RUNYARD_SECRET_KEY: ["runyard-secrets", "secret-key"],
      RUNYARD_ADMIN_TOKEN: ["runyard-secrets", "admin-token"],
    });
    // The runner gets its own token and none of the server's credentials.
    expect(fromSecrets(onlyContainer(runner))).toEqual({
      RUNYARD_TOKEN: ["runyard-secrets", "runner-token"],
    });
    for (const [, [name, key]] of [
      ...Object.entries(fromSecrets(onlyContainer(server))),
      ...Object.entries(fromSecrets(onlyContainer(runner))),
    ]) {
      expect(name).toBe(secret.metadata!.name);
      expect(Object.keys(secret.stringData ?? {})).toContain(key);
    }
    for (const container of [onlyContainer(server), onlyContainer(runner)]) {
      expect(container.envFrom).toEqual([{ configMapRef: { name: config.metadata!.name } }]);
    }
  });

  it("the Secret is a template whose placeholders a server refuses where it can", () => {
    for (const [key, value] of Object.entries(secret.stringData ?? {})) {
      expect(value, key).toContain("REPLACE_ME");
    }
    expect(secret.data).toBeUndefined();
    const placeholder = secret.stringData!["secret-key"]!;
    expect(() => loadConfig({ RUNYARD_SECRET_KEY: placeholder })).toThrow(ConfigError);
    expect(secret.stringData!["database-url"]).toMatch(/^postgres:\/\/[^@]+@[^/]+\.invalid:/);
  });

  it("the Service selects the server pods (not the runners) on port 8088, and runners point at it", () => {
    expect(service.spec!.type).toBe("ClusterIP");
    expect(service.spec!.sessionAffinity ?? "None").toBe("None");
    const selector = service.spec!.selector!;
    expect(matches(selector, server.spec!.template.metadata!.labels)).toBe(true);
    expect(matches(selector, runner.spec!.template.metadata!.labels)).toBe(false);
    expect(service.spec!.ports).toHaveLength(1);
    const port = service.spec!.ports![0]!;
    expect(port.port).toBe(8088);
    expect(portNumber(onlyContainer(server), port.targetPort!)).toBe(8088);

    const args = onlyContainer(runner).args!;
    expect(args[0]).toBe("runner");
    expect(args[args.indexOf("--server") + 1]).toBe(`http://${service.metadata!.name}:${port.port}`);
  });

  it("the runner has a writable work dir, home and /tmp on a read-only root", () => {
    const container = onlyContainer(runner);
    const args = container.args!;
    const writable = (path: string): boolean => {
      const mount = container.volumeMounts?.find((m) => m.mountPath === path);
      return (
        mount !== undefined &&
        mount.readOnly !== true &&
        podSpec(runner).volumes?.find((v) => v.name === mount.name)?.emptyDir !== undefined
      );
    };
    expect(writable(args[args.indexOf("--workspace-dir") + 1]!)).toBe(true);
    expect(writable(args[args.indexOf("--home") + 1]!)).toBe(true);
    expect(writable("/tmp")).toBe(true);
  });

  it("both Deployments are locked down, sized and outlast runyard's shutdown grace", () => {
    const graceMs = Number(config.data!.RUNYARD_SHUTDOWN_GRACE_MS);
    expect(graceMs).toBe(loadConfig({}).shutdownGraceMs);
    for (const deployment of [server, runner]) {
      const spec = podSpec(deployment);
      const container = onlyContainer(deployment);
      expect(spec.terminationGracePeriodSeconds! * 1000).toBeGreaterThanOrEqual(graceMs + 10_000);
      expect(spec.securityContext?.runAsNonRoot).toBe(true);
      expect(spec.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(container.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
      expect(container.securityContext?.capabilities?.add).toBeUndefined();
      expect(container.resources?.requests).toMatchObject({
        cpu: expect.any(String),
        memory: expect.any(String),
      });
      expect(container.resources?.limits).toMatchObject({
        cpu: expect.any(String),
        memory: expect.any(String),
      });
      expect(deployment.spec!.selector.matchLabels).toEqual(deployment.spec!.template.metadata!.labels);
    }
  });

  it("service links are off: a Service named runyard would set RUNYARD_PORT=tcp://…, which runyard refuses", () => {
    expect(() => loadConfig({ RUNYARD_PORT: "tcp://10.0.0.1:8088" })).toThrow(ConfigError);
    expect(podSpec(server).enableServiceLinks).toBe(false);
    expect(podSpec(runner).enableServiceLinks).toBe(false);
  });

  it("spreads the server replicas across nodes and keeps one up through voluntary disruptions", () => {
    const terms = podSpec(server).affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
    expect(terms).toHaveLength(1);
    const term = terms![0]!.podAffinityTerm;
    expect(term.topologyKey).toBe("kubernetes.io/hostname");
    expect(term.labelSelector?.matchLabels).toEqual(server.spec!.selector.matchLabels);

    expect(pdb.spec!.minAvailable).toBe(1);
    expect(matches(pdb.spec!.selector!.matchLabels!, server.spec!.template.metadata!.labels)).toBe(true);
    expect(matches(pdb.spec!.selector!.matchLabels!, runner.spec!.template.metadata!.labels)).toBe(false);
  });

  it("binds the runners' ServiceAccount to a Role that runs Jobs in its namespace and nothing cluster-wide", () => {
    expect(runnerAccount.automountServiceAccountToken).toBe(false);
    expect(runnerBinding.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: "runyard-runner",
    });
    expect(runnerBinding.subjects).toEqual([{ kind: "ServiceAccount", name: runnerAccount.metadata!.name }]);
    const grants = (group: string, resource: string): string[] =>
      (runnerRole.rules ?? [])
        .filter((rule) => rule.apiGroups?.includes(group) && rule.resources?.includes(resource))
        .flatMap((rule) => rule.verbs);
    expect(grants("batch", "jobs").sort()).toEqual(["create", "delete", "get", "list", "watch"]);
    expect(grants("", "pods").sort()).toEqual(["get", "list", "watch"]);
    expect(grants("", "pods/log")).toEqual(["get"]);
    expect(grants("", "secrets").sort()).toEqual(["create", "delete", "get", "list"]);
    expect(grants("networking.k8s.io", "networkpolicies").sort()).toEqual([
      "create",
      "delete",
      "get",
      "list",
    ]);
    // No wildcards, no pods/exec, no escalation through RBAC objects.
    for (const rule of runnerRole.rules ?? []) {
      expect([...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs]).not.toContain("*");
    }
    expect(grants("", "pods/exec")).toEqual([]);
    expect(grants("rbac.authorization.k8s.io", "roles")).toEqual([]);
  });
});
