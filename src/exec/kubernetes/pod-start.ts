import type { V1Pod } from "@kubernetes/client-node";
import { RunyardError } from "../../core/errors.js";
import type { KubeCluster } from "./cluster.js";
import { kubeLabels } from "./job-objects.js";
import { watchUntil } from "./watch-until.js";

/** How long a Job's pod may take to start, each as the config file names it. */
export interface PodStartLimits {
  /** From the first pull error (`ErrImagePull`, `ImagePullBackOff`) to giving up (`k8s_pull_timeout`). */
  pullTimeoutMs: number;
  /** From the Job's creation to its pod being on a node (`k8s_schedule_timeout`). */
  scheduleTimeoutMs: number;
}

/** Waiting reasons that mean the image will not come. */
const pullFailures = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrImageNeverPull",
  "RegistryUnavailable",
]);
/** Waiting reasons that no wait will mend. */
const configFailures = new Set(["InvalidImageName", "CreateContainerConfigError", "CreateContainerError"]);

/**
 * Waits for the pod of Job `jobName` to start (running, or already ended), and returns it. Fails
 * with a typed error as soon as it is clear it will not: KUBE_IMAGE_PULL_FAILED once pulls failed
 * for `pullTimeoutMs`, KUBE_UNSCHEDULABLE when it is not on a node after `scheduleTimeoutMs`,
 * KUBE_API_ERROR for a container the node cannot create (a missing Secret), KUBE_JOB_DELETED when
 * the Job or its pod went away. Aborting `signal` rejects with its reason.
 */
export async function waitForPodStart(
  cluster: KubeCluster,
  jobName: string,
  limits: PodStartLimits,
  signal: AbortSignal,
): Promise<V1Pod> {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  let last: V1Pod | undefined;
  let seen = false;
  let pullTimer: NodeJS.Timeout | undefined;
  const scheduleTimer = setTimeout(() => {
    if (last && scheduled(last)) return;
    void jobGone(cluster, jobName).then((gone) =>
      stop.abort(
        gone
          ? jobDeleted(jobName, cluster.namespace)
          : new RunyardError(
              "KUBE_UNSCHEDULABLE",
              `the pod of Job ${jobName} was not scheduled within ${seconds(limits.scheduleTimeoutMs)} (k8s_schedule_timeout)${unscheduledReason(last)}`,
            ),
      ),
    );
  }, limits.scheduleTimeoutMs);
  try {
    return await watchUntil<V1Pod, V1Pod>(
      cluster,
      "pods",
      `${kubeLabels.job}=${jobName}`,
      (pods) => {
        const pod = [...pods.values()][0];
        if (!pod) {
          if (seen) throw jobDeleted(jobName, cluster.namespace);
          return undefined;
        }
        seen = true;
        last = pod;
        if (pod.metadata?.deletionTimestamp) throw jobDeleted(jobName, cluster.namespace);
        const phase = pod.status?.phase;
        if (phase === "Running" || phase === "Succeeded" || phase === "Failed") return pod;
        const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
        const reason = waiting?.reason ?? "";
        // The Job's own Secret is made just after the Job: until then the kubelet waits for it.
        const ownSecret =
          reason === "CreateContainerConfigError" && (waiting?.message ?? "").includes(`"${jobName}"`);
        if (configFailures.has(reason) && !ownSecret) {
          throw new RunyardError(
            reason === "InvalidImageName" ? "KUBE_IMAGE_PULL_FAILED" : "KUBE_API_ERROR",
            `the pod of Job ${jobName} cannot start its container (${reason}): ${waiting?.message ?? "no message"}`,
          );
        }
        if (pullFailures.has(reason) && !pullTimer) {
          pullTimer = setTimeout(() => {
            const now = last?.status?.containerStatuses?.[0]?.state?.waiting;
            stop.abort(
              new RunyardError(
                "KUBE_IMAGE_PULL_FAILED",
                `the image ${last?.spec?.containers[0]?.image ?? "?"} of Job ${jobName} could not be pulled within ${seconds(limits.pullTimeoutMs)} (k8s_pull_timeout): ${now?.reason ?? reason}: ${now?.message ?? waiting?.message ?? "no message"}`,
              ),
            );
          }, limits.pullTimeoutMs);
        }
        return undefined;
      },
      stop.signal,
    );
  } finally {
    clearTimeout(scheduleTimer);
    if (pullTimer) clearTimeout(pullTimer);
    signal.removeEventListener("abort", onAbort);
  }
}

function scheduled(pod: V1Pod): boolean {
  return (
    Boolean(pod.spec?.nodeName) ||
    pod.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "True") === true
  );
}

function unscheduledReason(pod: V1Pod | undefined): string {
  const condition = pod?.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (!condition) return pod ? "" : ": the Job made no pod";
  return `: ${condition.reason ?? "Unschedulable"}: ${condition.message ?? "no message"}`;
}

/** Whether Job `name` is gone, or going (deleted by someone else). */
export async function jobGone(cluster: KubeCluster, name: string): Promise<boolean> {
  const jobs = await cluster.list("jobs", `${kubeLabels.job}=${name}`).catch(() => undefined);
  if (!jobs) return false;
  const job = jobs.items[0];
  return !job || Boolean(job.metadata?.deletionTimestamp);
}

export function jobDeleted(name: string, namespace: string): RunyardError {
  return new RunyardError(
    "KUBE_JOB_DELETED",
    `the Job ${name} in namespace ${namespace} was deleted while it ran, by someone other than this runner`,
  );
}

function seconds(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.round(ms / 100) / 10}s`;
}
