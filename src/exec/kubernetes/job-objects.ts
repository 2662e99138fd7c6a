import type {
  V1Container,
  V1Job,
  V1NetworkPolicy,
  V1NetworkPolicyPeer,
  V1PodSpec,
  V1Secret,
} from "@kubernetes/client-node";
import { podInitScript } from "./pod-init.js";

/** The labels every object runyard makes in a cluster carries (plain ids, so `kubectl -l` finds them). */
export const kubeLabels = {
  runId: "runyard.dev/run-id",
  task: "runyard.dev/task",
  turn: "runyard.dev/turn",
  runnerId: "runyard.dev/runner-id",
  /**
   * The install (the server's id) the runner made it for: installs whose runners share an id and
   * a namespace tell their Jobs apart by it (docs/runners.md).
   */
  install: "runyard.dev/install",
  /** The Job's name, on the Job and its pod: what its NetworkPolicy and its waits select. */
  job: "runyard.dev/job",
  step: "runyard.dev/step",
  attempt: "runyard.dev/attempt",
  /** `step` on every object made for a step attempt: `kubectl get jobs -l runyard.dev/component=step` lists them. */
  component: "runyard.dev/component",
} as const;

/** The pod's container: one, so the log and the exit are the command's. */
export const kubeContainerName = "turn";
/** Where the pod's in-memory home is mounted, as a sandboxed container's is (container-launcher.ts). */
export const kubePodHome = "/home/runyard";

/** The folders every pod gets empty (in memory): what the image holds there is hidden. */
export const kubePodEmptyFolders = [kubePodHome, "/tmp"] as const;

/** The most each of the pod's in-memory folders holds (it counts against the pod's memory limit too). */
export const kubePodFolderSizes = { home: "512Mi", tmp: "1Gi" } as const;

/**
 * How long a finished Job stays before the cluster's TTL controller deletes it (with its pod, and
 * its Secret and NetworkPolicy through their owner references): the runner deletes its Jobs itself
 * as soon as their command ended; this is the backstop for a runner that died or lost its API
 * server for good. Long enough that a runner never loses a pod it still reads the log of.
 */
export const kubeJobTtlSeconds = 600;

/**
 * The pod's empty folder that hides `path` of the image, if any: a file the command needs from
 * `k8s_image` (an agent CLI where the runner has it) must not lie under /tmp or the pod's home.
 */
export function hiddenInPod(path: string): string | undefined {
  return kubePodEmptyFolders.find((folder) => path === folder || path.startsWith(`${folder}/`));
}
/** The env name that carries the command's argv (JSON) in the Secret, read and dropped by the pod's init. */
export const argvVariable = "RUNYARD_TURN_ARGV";

/** A folder of the workspace claim mounted into the pod (by subPath) at `mountPath`. */
export interface ClaimMount {
  /** The folder inside the claim, relative to its root ("" for the root itself). */
  subPath: string;
  mountPath: string;
  readOnly: boolean;
}

/** An address and port the pod may reach besides DNS. */
export interface EgressRule {
  /** An IP address (v4 or v6) or a CIDR. */
  cidr: string;
  port: number;
}

/** Everything one Job is made of: the caller decides, this file writes the objects. */
export interface KubeJobRequest {
  /** The Job's name, also its Secret's and NetworkPolicy's: lower-case, at most 52 characters. */
  name: string;
  namespace: string;
  image: string;
  /** The command, run by the pod's init (so SIGTERM reaches it); kept in the Secret, not the spec. */
  argv: string[];
  /** The command's environment: kept in the Secret, each entry read by the pod as env. */
  env: Record<string, string>;
  workingDir?: string;
  /** Labels of the Job, its pod and its Secret and NetworkPolicy (plain ids). */
  labels: Record<string, string>;
  /** Secrets of the operator's whose every key is given to the pod as env (`k8s_secrets`). */
  extraSecrets: readonly string[];
  /** The pod's non-root user and group; `fsGroup` is the group, so the claim is writable. */
  user: { uid: number; gid: number };
  limits: { memoryBytes?: number; cpuMillis?: number };
  /** The Job's activeDeadlineSeconds: the cluster's own stop, after the runner's. */
  deadlineSeconds: number;
  /** The workspace claim and the folders of it the pod sees; none: no claim is mounted. */
  claim?: { name: string; mounts: ClaimMount[] };
  /** The node the pod must run on (a ReadWriteOnce claim is mounted on the runner's node only). */
  nodeName?: string;
  /** Where the pod may connect besides DNS; everything else is refused by the NetworkPolicy. */
  egress: EgressRule[];
  /** Seconds between SIGTERM and SIGKILL when the pod is deleted. */
  graceSeconds: number;
}

/** What a hardened Job is made of besides what every one has (`hardenedJob`). */
interface HardenedJobShape extends Pick<KubeJobRequest, "name" | "namespace" | "user" | "graceSeconds"> {
  /** The Job's and its pod's. */
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  deadlineSeconds?: number;
  ttlSeconds: number;
  /** The pod's volumes and placement: the fields `hardenedJob` sets win over these. */
  pod: Omit<V1PodSpec, "containers">;
  /** The pod's one container: its securityContext may only add to the hardened one. */
  container: V1Container;
}

/**
 * A Job, steps' and agent turns' alike, hardened: `restartPolicy: Never` and `backoffLimit: 0`
 * (run once, never again behind the runner's back); a non-root user with `fsGroup`, every
 * capability dropped, a read-only root, no privilege gain, seccomp `RuntimeDefault`, no
 * service-account token and no service links.
 */
export function hardenedJob(shape: HardenedJobShape) {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: shape.name, namespace: shape.namespace, ...shape.metadata },
    spec: {
      backoffLimit: 0,
      ...(shape.deadlineSeconds !== undefined ? { activeDeadlineSeconds: shape.deadlineSeconds } : {}),
      ttlSecondsAfterFinished: shape.ttlSeconds,
      template: {
        metadata: shape.metadata,
        spec: {
          ...shape.pod,
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: shape.graceSeconds,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: shape.user.uid,
            runAsGroup: shape.user.gid,
            fsGroup: shape.user.gid,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              imagePullPolicy: "IfNotPresent",
              ...shape.container,
              securityContext: {
                ...shape.container.securityContext,
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
                privileged: false,
                capabilities: { drop: ["ALL"] },
              },
            },
          ],
        },
      },
    },
  };
}

/**
 * The Job of one command, hardened (`hardenedJob`): its container cannot start before its Secret
 * exists (`envFrom` that is not optional), which the runner makes after its NetworkPolicy; in-memory
 * home and /tmp (each a size-limited `emptyDir` of `medium: Memory`); deleted by the cluster
 * `kubeJobTtlSeconds` after it finished, should the runner not delete it. The command and its env
 * are in the Secret only.
 */
export function jobObject(request: KubeJobRequest): V1Job {
  const mounts = [
    { name: "home", mountPath: kubePodEmptyFolders[0] },
    { name: "tmp", mountPath: kubePodEmptyFolders[1] },
    ...(request.claim?.mounts ?? []).map((mount) => ({
      name: "workspace",
      mountPath: mount.mountPath,
      ...(mount.subPath ? { subPath: mount.subPath } : {}),
      readOnly: mount.readOnly,
    })),
  ];
  const limits: Record<string, string> = {};
  if (request.limits.memoryBytes) limits.memory = String(request.limits.memoryBytes);
  if (request.limits.cpuMillis) limits.cpu = `${request.limits.cpuMillis}m`;
  return hardenedJob({
    name: request.name,
    namespace: request.namespace,
    metadata: { labels: { ...request.labels, [kubeLabels.job]: request.name } },
    deadlineSeconds: request.deadlineSeconds,
    ttlSeconds: kubeJobTtlSeconds,
    graceSeconds: request.graceSeconds,
    user: request.user,
    pod: {
      ...(request.nodeName
        ? {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [
                    {
                      matchExpressions: [
                        { key: "kubernetes.io/hostname", operator: "In", values: [request.nodeName] },
                      ],
                    },
                  ],
                },
              },
            },
          }
        : {}),
      volumes: [
        { name: "home", emptyDir: { medium: "Memory", sizeLimit: kubePodFolderSizes.home } },
        { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: kubePodFolderSizes.tmp } },
        ...(request.claim
          ? [{ name: "workspace", persistentVolumeClaim: { claimName: request.claim.name } }]
          : []),
      ],
    },
    container: {
      name: kubeContainerName,
      image: request.image,
      command: ["node", "-e", podInitScript],
      ...(request.workingDir ? { workingDir: request.workingDir } : {}),
      env: [
        { name: "HOME", value: kubePodHome },
        { name: "TMPDIR", value: "/tmp" },
      ],
      envFrom: [
        { secretRef: { name: request.name } },
        ...request.extraSecrets.map((name) => ({ secretRef: { name } })),
      ],
      resources:
        Object.keys(limits).length > 0
          ? {
              limits,
              requests: {
                ...(limits.memory ? { memory: limits.memory } : {}),
                ...(limits.cpu ? { cpu: `${Math.min(request.limits.cpuMillis ?? 100, 100)}m` } : {}),
              },
            }
          : {},
      volumeMounts: mounts,
    },
  });
}

/** Who owns an object: the Job, so deleting it (Foreground) deletes the object too. */
export interface JobOwner {
  name: string;
  uid: string;
}

/** The ownerReference that has the garbage collector delete an object (a Secret) with its Job. */
export function ownedBy(job: JobOwner) {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    name: job.name,
    uid: job.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/**
 * The Secret of one Job: the command's env (the model key among it) and its argv, each key an
 * env name the pod reads (`envFrom`). Env names Kubernetes cannot take are left out.
 */
export function secretObject(request: KubeJobRequest, owner: JobOwner): V1Secret {
  const data: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.env)) {
    if (secretKeyPattern.test(name) && name !== "HOME" && name !== "TMPDIR") data[name] = value;
  }
  data[argvVariable] = JSON.stringify(request.argv);
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "Opaque",
    metadata: ownedMetadata(request, owner),
    stringData: data,
  };
}

/** The metadata of an object its Job owns (its Secret, its NetworkPolicy). */
function ownedMetadata(request: KubeJobRequest, owner: JobOwner) {
  const { name, namespace, labels } = request;
  return { name, namespace, labels, ownerReferences: [ownedBy(owner)] };
}

/** What a Secret's key may be (and so an env name the pod gets from it). */
const secretKeyPattern = /^[-._a-zA-Z0-9]{1,253}$/;

/**
 * The NetworkPolicy of one Job's pod: no ingress; egress to DNS (UDP and TCP 53, anywhere) and
 * to each of `request.egress`, nothing else. Enforced where the cluster's network plugin
 * enforces NetworkPolicy.
 */
export function networkPolicyObject(request: KubeJobRequest, owner: JobOwner): V1NetworkPolicy {
  const byPort = new Map<number, V1NetworkPolicyPeer[]>();
  for (const rule of request.egress) {
    const cidr = rule.cidr.includes("/") ? rule.cidr : `${rule.cidr}/${rule.cidr.includes(":") ? 128 : 32}`;
    const peers = byPort.get(rule.port) ?? [];
    if (!peers.some((peer) => peer.ipBlock?.cidr === cidr)) peers.push({ ipBlock: { cidr } });
    byPort.set(rule.port, peers);
  }
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: ownedMetadata(request, owner),
    spec: {
      podSelector: { matchLabels: { [kubeLabels.job]: request.name } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      egress: [
        {
          ports: [
            { protocol: "UDP", port: 53 },
            { protocol: "TCP", port: 53 },
          ],
        },
        ...[...byPort].map(([port, to]) => ({ to, ports: [{ protocol: "TCP", port }] })),
      ],
    },
  };
}

/**
 * A label value from an id: Kubernetes takes at most 63 characters of `[A-Za-z0-9_.-]`, starting
 * and ending with a letter or digit. runyard's ids are such already; anything else is cut to fit.
 */
export function labelValue(id: string): string {
  const cleaned = id.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 63);
  return cleaned.replace(/^[^A-Za-z0-9]+/, "").replace(/[^A-Za-z0-9]+$/, "");
}
