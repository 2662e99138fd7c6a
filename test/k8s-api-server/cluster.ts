/**
 * The scripted cluster's control plane: creating objects as kube-apiserver does (validation,
 * defaults, generated names, uids), deleting them with the three propagation policies, the
 * garbage collector (owner references; Foreground keeps the owner with a deletionTimestamp and
 * the `foregroundDeletion` finalizer until its dependents are gone) and the Job controller (one
 * Pod per attempt, `backoffLimit`, `activeDeadlineSeconds`, the Complete / Failed conditions),
 * and the TTL-after-finished controller (a finished Job with `ttlSecondsAfterFinished` is deleted,
 * Foreground, that long after its Complete or Failed condition). Pods are run by the kubelet (kubelet.ts).
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { type Change, type KubeObject, ObjectStore } from "./objects.js";
import { apiVersionOf, type ResourceInfo, resourceOfKind, resources } from "./resources.js";
import { alreadyExists, badRequest, invalid, namespaceNotFound, notFound } from "./status.js";
import { validationCauses } from "./validate.js";

/** A timestamp as the API writes them: RFC 3339, whole seconds, UTC. */
export const timestamp = (at = Date.now()): string => new Date(at).toISOString().replace(/\.\d+Z$/, "Z");

const nameChars = "bcdfghjklmnpqrstvwxz2456789";
/** The 5-character suffix kube-apiserver adds to a generateName. */
export const randomSuffix = (): string =>
  Array.from({ length: 5 }, () => nameChars[Math.floor(Math.random() * nameChars.length)]).join("");

export const info = (resource: string): ResourceInfo => {
  const found = resources.find((r) => r.resource === resource);
  if (!found) throw new Error(`no resource ${resource}`);
  return found;
};
const jobs = info("jobs");
const pods = info("pods");

export type PropagationPolicy = "Foreground" | "Background" | "Orphan";

export interface DeleteOptions {
  propagationPolicy?: PropagationPolicy;
  gracePeriodSeconds?: number;
}

interface JobCondition {
  type: string;
  status: "True" | "False";
  reason?: string;
  message?: string;
  lastProbeTime: string;
  lastTransitionTime: string;
}

interface JobStatus {
  startTime?: string;
  completionTime?: string;
  active?: number;
  ready?: number;
  terminating?: number;
  succeeded?: number;
  failed?: number;
  conditions?: JobCondition[];
  uncountedTerminatedPods?: Record<string, never>;
}

type Spec = Record<string, unknown>;
const specOf = (object: KubeObject): Spec => (object.spec ?? {}) as Spec;
const phaseOf = (pod: KubeObject): string | undefined =>
  (pod.status as { phase?: string } | undefined)?.phase;

function defaultPodSpec(spec: Spec): void {
  spec.restartPolicy ??= "Always";
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= "ClusterFirst";
  spec.schedulerName ??= "default-scheduler";
  spec.securityContext ??= {};
  spec.serviceAccountName ??= "default";
  for (const list of ["initContainers", "containers"]) {
    for (const container of (spec[list] as Spec[] | undefined) ?? []) {
      const image = String(container.image ?? "");
      const tagged = /:[^/]+$/.test(image) && !image.endsWith(":latest");
      container.imagePullPolicy ??= tagged || image.includes("@") ? "IfNotPresent" : "Always";
      container.terminationMessagePath ??= "/dev/termination-log";
      container.terminationMessagePolicy ??= "File";
      container.resources ??= {};
    }
  }
}

export class Cluster {
  readonly store = new ObjectStore();
  /** "faults" when a fault changes; kubelet workers wait on it. */
  readonly events = new EventEmitter();
  private readonly deadlines = new Map<string, NodeJS.Timeout>();
  /** The TTL-after-finished controller's timers, per Job uid. */
  private readonly expiries = new Map<string, NodeJS.Timeout>();
  /** Pod uids counted per Job uid, so a pod deleted after it ended still counts. */
  private readonly counted = new Map<string, { succeeded: Set<string>; failed: Set<string> }>();
  private closed = false;

  constructor() {
    this.events.setMaxListeners(0);
    this.store.listeners.push((change) => {
      if (!this.closed) this.onChange(change);
    });
  }

  namespaceExists(name: string): boolean {
    return this.store.get(info("namespaces"), undefined, name) !== undefined;
  }

  createNamespace(name: string): KubeObject {
    return this.create(info("namespaces"), undefined, {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name },
    });
  }

  /** Removes a namespace and, with it, everything in it (pods stop at once). */
  deleteNamespace(name: string): void {
    for (const r of resources.filter((x) => x.namespaced)) {
      for (const object of this.store.list(r, name)) {
        if (r === pods) this.deletePod(object, 0);
        else this.store.remove(r, name, object.metadata.name);
      }
    }
    this.store.remove(info("namespaces"), undefined, name);
  }

  /** POST: what kube-apiserver does before it stores an object. */
  create(r: ResourceInfo, namespace: string | undefined, input: unknown): KubeObject {
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      throw badRequest(`the body of the request was in an unknown format: not a ${r.kind} object`);
    }
    const body = structuredClone(input) as Record<string, unknown>;
    const apiVersion = apiVersionOf(r);
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersion) {
      throw badRequest(
        `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion})`,
      );
    }
    if (body.kind !== undefined && body.kind !== r.kind) {
      throw badRequest(
        `the kind in the data (${String(body.kind)}) does not match the expected kind (${r.kind})`,
      );
    }
    body.apiVersion = apiVersion;
    body.kind = r.kind;
    const metadata = (body.metadata ?? {}) as Record<string, unknown>;
    body.metadata = metadata;
    if (r.namespaced) {
      if (metadata.namespace !== undefined && metadata.namespace !== namespace) {
        throw badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      metadata.namespace = namespace;
    }
    if (!metadata.name && typeof metadata.generateName === "string") {
      metadata.name = `${metadata.generateName}${randomSuffix()}`;
    }
    const name = typeof metadata.name === "string" ? metadata.name : "";
    if (!name) {
      throw invalid(r, "", [
        {
          reason: "FieldValueRequired",
          message: "Required value: name or generateName is required",
          field: "metadata.name",
        },
      ]);
    }
    const causes = validationCauses(body);
    if (causes.length > 0) throw invalid(r, name, causes);
    if (r.namespaced && !this.namespaceExists(namespace ?? "")) throw namespaceNotFound(namespace ?? "");
    if (this.store.get(r, namespace, name)) throw alreadyExists(r, name);

    const uid = randomUUID();
    Object.assign(metadata, { uid, creationTimestamp: timestamp() });
    for (const key of ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"]) {
      delete metadata[key];
    }
    if (r.kind === "Job" || r.kind === "Pod") delete body.status;
    if (r.kind === "Job") this.defaultJob(body, name, uid);
    if (r.kind === "Pod") defaultPodSpec(specOf(body as KubeObject));
    if (r.kind === "Secret") {
      const data = { ...((body.data ?? {}) as Record<string, string>) };
      for (const [key, value] of Object.entries((body.stringData ?? {}) as Record<string, string>)) {
        data[key] = Buffer.from(value).toString("base64");
      }
      body.data = data;
      delete body.stringData;
      body.type ??= "Opaque";
    }
    if (r.kind === "Namespace") {
      body.spec = { finalizers: ["kubernetes"] };
      body.status = { phase: "Active" };
      metadata.labels = { ...((metadata.labels ?? {}) as object), "kubernetes.io/metadata.name": name };
    }
    const stored = this.store.add(r, body as KubeObject);
    const owners = stored.metadata.ownerReferences ?? [];
    if (owners.length > 0 && !owners.some((owner) => this.byUid(owner.uid))) {
      // An object whose owners are all gone is garbage as soon as the collector sees it.
      setImmediate(() => this.collect(stored));
    }
    return stored;
  }

  private defaultJob(body: Record<string, unknown>, name: string, uid: string): void {
    const spec = (body.spec ?? {}) as Spec;
    const template = (spec.template ?? {}) as Spec;
    const templateMeta = (template.metadata ?? {}) as { labels?: Record<string, string> };
    const metadata = body.metadata as { labels?: Record<string, string> };
    if (!metadata.labels || Object.keys(metadata.labels).length === 0) {
      if (templateMeta.labels) metadata.labels = { ...templateMeta.labels };
    }
    const selectorLabels = { "batch.kubernetes.io/controller-uid": uid };
    templateMeta.labels = {
      ...templateMeta.labels,
      ...selectorLabels,
      "batch.kubernetes.io/job-name": name,
      "controller-uid": uid,
      "job-name": name,
    };
    template.metadata = templateMeta;
    spec.selector = { matchLabels: selectorLabels };
    spec.parallelism ??= 1;
    spec.completions ??= 1;
    spec.backoffLimit ??= 6;
    spec.completionMode ??= "NonIndexed";
    spec.suspend ??= false;
    spec.manualSelector ??= false;
    spec.podReplacementPolicy ??= "TerminatingOrFailed";
    defaultPodSpec((template.spec ?? {}) as Spec);
    (body.metadata as { generation?: number }).generation = 1;
    body.status = {};
  }

  private byUid(uid: string): KubeObject | undefined {
    return this.store.all().find((o) => o.metadata.uid === uid);
  }

  private dependents(uid: string): KubeObject[] {
    return this.store.all().filter((o) => o.metadata.ownerReferences?.some((ref) => ref.uid === uid));
  }

  /** DELETE: answers the object as it now is (with a deletionTimestamp while it is going). */
  delete(
    r: ResourceInfo,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): KubeObject {
    const object = this.store.get(r, namespace, name);
    if (!object) throw notFound(r, name);
    if (r === pods) return this.deletePod(object, options.gracePeriodSeconds);
    if (object.metadata.deletionTimestamp) return object;
    // batch/v1 Jobs orphan their pods unless told otherwise (kube-apiserver's default for Jobs).
    const policy = options.propagationPolicy ?? (r === jobs ? "Orphan" : "Background");
    const dependents = this.dependents(object.metadata.uid);
    if (policy === "Orphan") {
      for (const dependent of dependents) {
        const dr = resourceOfKind(dependent.kind)!;
        this.store.update(dr, dependent.metadata.namespace, dependent.metadata.name, (o) => {
          o.metadata.ownerReferences = o.metadata.ownerReferences?.filter(
            (ref) => ref.uid !== object.metadata.uid,
          );
          if (o.metadata.ownerReferences?.length === 0) delete o.metadata.ownerReferences;
        });
      }
      return this.store.remove(r, namespace, name)!;
    }
    if (policy === "Foreground" && dependents.length > 0) {
      const deleting = this.store.update(r, namespace, name, (o) => {
        o.metadata.deletionTimestamp = timestamp();
        o.metadata.deletionGracePeriodSeconds = 0;
        o.metadata.finalizers = [...(o.metadata.finalizers ?? []), "foregroundDeletion"];
      })!;
      for (const dependent of dependents) this.collect(dependent);
      return deleting;
    }
    return this.store.remove(r, namespace, name)!;
  }

  /**
   * A pod's deletion is graceful: it gets a deletionTimestamp, the kubelet stops its containers
   * (SIGTERM, then SIGKILL after the grace period) and then the pod is removed.
   */
  private deletePod(pod: KubeObject, grace: number | undefined): KubeObject {
    const seconds = grace ?? (specOf(pod).terminationGracePeriodSeconds as number | undefined) ?? 30;
    if (pod.metadata.deletionTimestamp) return pod;
    return this.store.update(pods, pod.metadata.namespace, pod.metadata.name, (o) => {
      o.metadata.deletionTimestamp = timestamp(Date.now() + seconds * 1000);
      o.metadata.deletionGracePeriodSeconds = seconds;
    })!;
  }

  /** Removes a pod whose containers the kubelet has stopped. */
  finalizePod(namespace: string, name: string): void {
    this.store.remove(pods, namespace, name);
  }

  /** The garbage collector deleting one dependent whose owner is going or gone. */
  private collect(dependent: KubeObject): void {
    const r = resourceOfKind(dependent.kind);
    if (!r || !this.store.get(r, dependent.metadata.namespace, dependent.metadata.name)) return;
    try {
      this.delete(r, dependent.metadata.namespace, dependent.metadata.name, {
        propagationPolicy: "Background",
      });
    } catch {
      // Gone meanwhile.
    }
  }

  private onChange(change: Change): void {
    const { object } = change;
    if (change.type === "DELETED") {
      for (const dependent of this.dependents(object.metadata.uid)) this.collect(dependent);
      for (const owner of object.metadata.ownerReferences ?? []) {
        const found = this.byUid(owner.uid);
        if (
          found?.metadata.finalizers?.includes("foregroundDeletion") &&
          this.dependents(owner.uid).length === 0
        ) {
          this.store.remove(resourceOfKind(found.kind)!, found.metadata.namespace, found.metadata.name);
        }
      }
      if (object.kind === "Job") {
        clearTimeout(this.deadlines.get(object.metadata.uid));
        this.deadlines.delete(object.metadata.uid);
        clearTimeout(this.expiries.get(object.metadata.uid));
        this.expiries.delete(object.metadata.uid);
        this.counted.delete(object.metadata.uid);
      }
    }
    if (object.kind === "Job" && change.type === "ADDED")
      setImmediate(() => this.syncJob(object.metadata.uid));
    if (object.kind === "Pod") {
      const owner = object.metadata.ownerReferences?.find((ref) => ref.kind === "Job" && ref.controller);
      if (owner) setImmediate(() => this.syncJob(owner.uid));
    }
  }

  /** The Job controller, for the one Job with `uid`: pods, counts, conditions, deadline. */
  syncJob(uid: string): void {
    if (this.closed) return;
    const job = this.byUid(uid);
    if (job?.kind !== "Job") return;
    const spec = specOf(job);
    const status = (job.status ?? {}) as JobStatus;
    const namespace = job.metadata.namespace!;
    const owned = this.store
      .list(pods, namespace)
      .filter((pod) => pod.metadata.ownerReferences?.some((ref) => ref.uid === uid));
    const counts = this.counted.get(uid) ?? { succeeded: new Set<string>(), failed: new Set<string>() };
    this.counted.set(uid, counts);
    for (const pod of owned) {
      if (phaseOf(pod) === "Succeeded") counts.succeeded.add(pod.metadata.uid);
      if (phaseOf(pod) === "Failed") counts.failed.add(pod.metadata.uid);
    }
    const active = owned.filter(
      (pod) => !["Succeeded", "Failed"].includes(phaseOf(pod) ?? "") && !pod.metadata.deletionTimestamp,
    );
    const terminating = owned.filter(
      (pod) => pod.metadata.deletionTimestamp && !["Succeeded", "Failed"].includes(phaseOf(pod) ?? ""),
    );
    const ready = active.filter((pod) =>
      (pod.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.some(
        (c) => c.type === "Ready" && c.status === "True",
      ),
    );
    const conditions = [...(status.conditions ?? [])];
    const finished = conditions.some(
      (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
    );
    const failureTarget = conditions.find((c) => c.type === "FailureTarget" && c.status === "True");
    const now = timestamp();
    const condition = (type: string, reason: string, message: string): JobCondition => ({
      type,
      status: "True",
      reason,
      message,
      lastProbeTime: now,
      lastTransitionTime: now,
    });
    const startTime = status.startTime ?? now;
    let next: JobStatus = {
      ...status,
      startTime,
      active: active.length,
      ready: ready.length,
      terminating: terminating.length,
      succeeded: counts.succeeded.size,
      failed: counts.failed.size,
      uncountedTerminatedPods: {},
    };
    if (job.metadata.deletionTimestamp || finished) {
      next = { ...next, conditions };
    } else if (failureTarget) {
      // Failed only once its pods have stopped (as the Job controller does since 1.31).
      if (active.length === 0 && terminating.length === 0) {
        conditions.push(condition("Failed", failureTarget.reason ?? "", failureTarget.message ?? ""));
      }
      next.conditions = conditions;
    } else {
      const deadline = spec.activeDeadlineSeconds as number | undefined;
      const elapsed = (Date.now() - Date.parse(startTime)) / 1000;
      const completions = (spec.completions as number | undefined) ?? 1;
      const backoffLimit = (spec.backoffLimit as number | undefined) ?? 6;
      let failing: JobCondition | undefined;
      if (deadline !== undefined && elapsed >= deadline) {
        failing = condition(
          "FailureTarget",
          "DeadlineExceeded",
          "Job was active longer than specified deadline",
        );
      } else if (counts.failed.size > backoffLimit) {
        failing = condition(
          "FailureTarget",
          "BackoffLimitExceeded",
          "Job has reached the specified backoff limit",
        );
      }
      if (failing) {
        for (const pod of active) this.deletePod(pod, undefined);
        conditions.push(failing);
        if (active.length === 0 && terminating.length === 0) {
          conditions.push({ ...failing, type: "Failed" });
        }
        next.conditions = conditions;
      } else if (counts.succeeded.size >= completions) {
        conditions.push(
          condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
        );
        conditions.push(
          condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
        );
        next.conditions = conditions;
        next.completionTime = now;
      } else if (active.length === 0 && terminating.length === 0 && !spec.suspend) {
        this.createJobPod(job);
        next.active = 1;
      }
      if (deadline !== undefined && !this.deadlines.has(uid)) {
        const left = Math.max(0, Date.parse(startTime) + deadline * 1000 - Date.now());
        this.deadlines.set(
          uid,
          setTimeout(() => this.syncJob(uid), left + 50),
        );
      }
    }
    if (JSON.stringify(next) !== JSON.stringify(status)) {
      this.store.update(jobs, namespace, job.metadata.name, (o) => {
        o.status = next;
      });
    }
    this.expireAfterFinished(job, next);
  }

  /**
   * The TTL-after-finished controller: a Job with `ttlSecondsAfterFinished` whose Complete or
   * Failed condition is set is deleted that long after it, with Foreground propagation (its pods,
   * and whatever else it owns, go first), as kube-controller-manager's ttlafterfinished does.
   */
  private expireAfterFinished(job: KubeObject, status: JobStatus): void {
    const ttl = specOf(job).ttlSecondsAfterFinished as number | undefined;
    const uid = job.metadata.uid;
    if (ttl === undefined || job.metadata.deletionTimestamp || this.expiries.has(uid)) return;
    const ended = status.conditions?.find(
      (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
    );
    if (!ended) return;
    const at = Date.parse(ended.lastTransitionTime ?? timestamp()) + ttl * 1000;
    const timer = setTimeout(
      () => {
        const current = this.byUid(uid);
        if (!current || this.closed) return;
        try {
          this.delete(jobs, current.metadata.namespace, current.metadata.name, {
            propagationPolicy: "Foreground",
          });
        } catch {
          // Gone meanwhile.
        }
      },
      Math.max(0, at - Date.now()),
    );
    this.expiries.set(uid, timer);
  }

  private createJobPod(job: KubeObject): void {
    const template = (specOf(job).template ?? {}) as { metadata?: Spec; spec?: Spec };
    const name = job.metadata.name;
    this.create(pods, job.metadata.namespace, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${name}-${randomSuffix()}`,
        generateName: `${name}-`,
        labels: (template.metadata?.labels as Record<string, string> | undefined) ?? {},
        ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
        ownerReferences: [
          {
            apiVersion: "batch/v1",
            kind: "Job",
            name,
            uid: job.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: structuredClone(template.spec ?? {}),
    });
  }

  close(): void {
    this.closed = true;
    for (const timer of [...this.deadlines.values(), ...this.expiries.values()]) clearTimeout(timer);
    this.deadlines.clear();
    this.expiries.clear();
  }
}
