import {
  BatchV1Api,
  CoreV1Api,
  NetworkingV1Api,
  type V1Job,
  type V1JobList,
  type V1NetworkPolicy,
  type V1PodList,
  type V1Secret,
} from "@kubernetes/client-node";
import type { RunyardError } from "../../core/errors.js";
import { type KubeCredentials, loadKubeCredentials } from "./credentials.js";
import { type KubeCall, kubeFault } from "./faults.js";
import { type JobOwner, kubeLabels } from "./job-objects.js";
import { watchUntil } from "./watch-until.js";

/** An object a Job owns, made right after it. */
export type OwnedObject =
  | { resource: "secrets"; body: V1Secret }
  | { resource: "networkpolicies"; body: V1NetworkPolicy };

/** The pauses between tries to delete a Job whose deletion failed: doubling from the first to the most. */
export const removalPauseMs = { first: 1000, most: 30_000 } as const;

/**
 * One namespace of one cluster, through `@kubernetes/client-node`: the calls runyard makes,
 * each fault turned into a typed error (faults.ts). Made by `connect`, which refuses a cluster
 * the runner cannot use, so that a runner never starts against one.
 */
export class KubeCluster {
  /** The Jobs whose deletion failed and is tried again, by name: the timer of the next try. */
  private readonly removals = new Map<string, NodeJS.Timeout>();

  private constructor(
    readonly credentials: KubeCredentials,
    readonly namespace: string,
    private readonly batch: BatchV1Api,
    private readonly core: CoreV1Api,
    private readonly networking: NetworkingV1Api,
  ) {}

  /**
   * Loads the runner's credentials (credentials.ts) and checks, within seconds, that the API
   * server answers and lets the runner list Jobs and pods in `namespace` (the credentials' own
   * namespace, else `default`, when none is named). Throws a typed KUBE_* error otherwise.
   */
  static async connect(
    env: Readonly<Record<string, string | undefined>>,
    options: { namespace?: string; context?: string },
  ): Promise<KubeCluster> {
    const credentials = await loadKubeCredentials(env, options.context);
    const { config } = credentials;
    const cluster = new KubeCluster(
      credentials,
      options.namespace ?? credentials.namespace ?? "default",
      config.makeApiClient(BatchV1Api),
      config.makeApiClient(CoreV1Api),
      config.makeApiClient(NetworkingV1Api),
    );
    await cluster.list("jobs", kubeLabels.runnerId, 1);
    await cluster.list("pods", kubeLabels.runnerId, 1);
    return cluster;
  }

  /** The API server's URL. */
  get server(): string {
    return this.credentials.server;
  }

  /** The URL path of a collection of the namespace, as a watch asks for it. */
  collectionPath(resource: "jobs" | "pods"): string {
    const group = resource === "jobs" ? "/apis/batch/v1" : "/api/v1";
    return `${group}/namespaces/${encodeURIComponent(this.namespace)}/${resource}`;
  }

  /** A fault of a call in this namespace, typed. */
  fault(error: unknown, call: Pick<KubeCall, "verb" | "resource">): RunyardError {
    return kubeFault(error, { ...call, namespace: this.namespace, server: this.server });
  }

  /** Runs one call of the client, its fault typed. */
  async call<T>(call: Pick<KubeCall, "verb" | "resource">, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw this.fault(error, call);
    }
  }

  /** Lists Jobs or pods of the namespace that match `labelSelector`. */
  async list(resource: "jobs", labelSelector: string, limit?: number): Promise<V1JobList>;
  async list(resource: "pods", labelSelector: string, limit?: number): Promise<V1PodList>;
  async list(
    resource: "jobs" | "pods",
    labelSelector: string,
    limit?: number,
  ): Promise<V1JobList | V1PodList>;
  async list(
    resource: "jobs" | "pods",
    labelSelector: string,
    limit?: number,
  ): Promise<V1JobList | V1PodList> {
    const query = { namespace: this.namespace, labelSelector, ...(limit ? { limit } : {}) };
    return this.call<V1JobList | V1PodList>({ verb: "list", resource }, () =>
      resource === "jobs" ? this.batch.listNamespacedJob(query) : this.core.listNamespacedPod(query),
    );
  }

  /**
   * Creates `job`, then each object `owned` makes for it, in order, owned by the Job: its
   * container waits for its Secret (the kubelet retries until it exists), so it never starts
   * without its env or before its egress rules. Whatever fails on the way, nothing is left behind
   * (the Job is deleted with what it owns). Needs no verb but create.
   */
  async createJob(job: V1Job, owned: (owner: JobOwner) => OwnedObject[]): Promise<JobOwner> {
    const namespace = this.namespace;
    const created = await this.call({ verb: "create", resource: "jobs" }, () =>
      this.batch.createNamespacedJob({ namespace, body: job }),
    );
    const owner = {
      name: created.metadata?.name ?? job.metadata?.name ?? "",
      uid: created.metadata?.uid ?? "",
    };
    try {
      for (const object of owned(owner)) {
        await this.call({ verb: "create", resource: object.resource }, () =>
          object.resource === "secrets"
            ? this.core.createNamespacedSecret({ namespace, body: object.body })
            : this.networking.createNamespacedNetworkPolicy({ namespace, body: object.body }),
        );
      }
    } catch (error) {
      await this.removeJob(owner.name, { graceSeconds: 0 });
      throw error;
    }
    return owner;
  }

  /**
   * Deletes a Job with `propagationPolicy: Foreground` and waits until its pods are gone and
   * the Job with them (the API keeps it, with a deletionTimestamp, until its dependents are).
   * A Job already gone is no error. The wait ends after `graceSeconds` plus 30 s at most.
   */
  async deleteJob(name: string, options: { graceSeconds: number }): Promise<void> {
    try {
      await this.batch.deleteNamespacedJob({
        name,
        namespace: this.namespace,
        propagationPolicy: "Foreground",
        gracePeriodSeconds: options.graceSeconds,
      });
    } catch (error) {
      if ((error as { code?: unknown }).code !== 404)
        throw this.fault(error, { verb: "delete", resource: "jobs" });
    }
    const limit = AbortSignal.timeout((options.graceSeconds + 30) * 1000);
    const selector = `${kubeLabels.job}=${name}`;
    await watchUntil(this, "pods", selector, (pods) => (pods.size === 0 ? true : undefined), limit);
    await watchUntil<V1Job, true>(
      this,
      "jobs",
      selector,
      (jobs) => (jobs.has(name) ? undefined : true),
      limit,
    );
  }

  /**
   * Deletes a Job as `deleteJob` does and, when that fails (the API server went away, or answered
   * an error), tries again in the background, with pauses doubling from 1 s to 30 s, until the Job
   * is gone, for as long as this process runs: whoever ran it goes on without waiting for the API
   * to come back, and its pod, Secret and NetworkPolicy (owned by the Job) go with it once it is
   * back. Resolves once the first try ended; never throws.
   */
  async removeJob(name: string, options: { graceSeconds: number }): Promise<void> {
    try {
      await this.deleteJob(name, options);
    } catch {
      this.removeLater(name, options.graceSeconds, 0);
    }
  }

  private removeLater(name: string, graceSeconds: number, tries: number): void {
    if (this.removals.has(name)) return;
    const pause = Math.min(removalPauseMs.most, removalPauseMs.first * 2 ** tries);
    const timer = setTimeout(() => {
      this.deleteJob(name, { graceSeconds }).then(
        () => this.removals.delete(name),
        () => {
          this.removals.delete(name);
          this.removeLater(name, graceSeconds, tries + 1);
        },
      );
    }, pause);
    // The runner's own connections keep it alive; a try still due never does.
    timer.unref();
    this.removals.set(name, timer);
  }

  /** The Jobs of the namespace that carry `labels` (a restarted runner finds its own). */
  async findJobs(labels: Record<string, string>): Promise<V1Job[]> {
    const selector = Object.entries(labels)
      .map(([key, value]) => `${key}=${value}`)
      .join(",");
    return (await this.list("jobs", selector)).items;
  }
}
