import type { V1Pod } from "@kubernetes/client-node";
import { RunyardError } from "../../core/errors.js";
import type { KubeCluster } from "./cluster.js";
import { kubeLabels } from "./job-objects.js";
import { jobDeleted } from "./pod-start.js";
import { watchUntil } from "./watch-until.js";

/** How a Job's pod ended: its command's exit code, or the cluster's reason it did not end by itself. */
export interface PodEnd {
  exitCode: number | null;
  /** The container's terminated reason as the kubelet gives it (`Completed`, `Error`, `OOMKilled`). */
  reason?: string;
  /** Set when the cluster ended the pod (OOMKilled, evicted): the turn fails with it. */
  fault?: RunyardError;
}

/**
 * Waits until the pod of Job `jobName` has ended, and says how: the exit code of its container,
 * KUBE_POD_OOM_KILLED for a container killed at its memory limit, KUBE_POD_EVICTED for a pod the
 * node evicted. A pod that goes away before it ended throws KUBE_JOB_DELETED; aborting `signal`
 * rejects with its reason (a fault of the API is typed by the watch).
 */
export async function waitForPodEnd(
  cluster: KubeCluster,
  jobName: string,
  signal: AbortSignal,
): Promise<PodEnd> {
  return watchUntil<V1Pod, PodEnd>(
    cluster,
    "pods",
    `${kubeLabels.job}=${jobName}`,
    (pods) => {
      const pod = [...pods.values()][0];
      if (!pod) throw jobDeleted(jobName, cluster.namespace);
      return podEnd(pod, jobName);
    },
    signal,
  );
}

/**
 * How `pod` ended, or undefined while it runs. Only the pod's final status is read: the kubelet
 * writes the container's terminated state before the pod's phase and reason, so an exit seen
 * alone may yet turn out to be an eviction (reason `Evicted`) or a deletion by someone else
 * (a deletionTimestamp the runner did not set: it stops watching before it deletes).
 */
export function podEnd(pod: V1Pod, jobName: string): PodEnd | undefined {
  const status = pod.status;
  if (status?.reason === "Evicted") {
    return {
      exitCode: null,
      reason: "Evicted",
      fault: new RunyardError(
        "KUBE_POD_EVICTED",
        `the node evicted the pod of Job ${jobName}: ${status.message ?? "no message"}`,
      ),
    };
  }
  const phase = status?.phase;
  if (phase !== "Succeeded" && phase !== "Failed") return undefined;
  const terminated = status?.containerStatuses?.[0]?.state?.terminated;
  if (terminated?.reason === "OOMKilled") {
    const limit = pod.spec?.containers[0]?.resources?.limits?.memory;
    return {
      exitCode: terminated.exitCode,
      reason: "OOMKilled",
      fault: new RunyardError(
        "KUBE_POD_OOM_KILLED",
        `the pod of Job ${jobName} went over its memory limit${limit ? ` of ${limit}` : ""} and was killed (OOMKilled)`,
      ),
    };
  }
  // Stopped because it was being deleted: not by this runner, which stops watching first.
  if (phase === "Failed" && pod.metadata?.deletionTimestamp)
    throw jobDeleted(jobName, pod.metadata.namespace ?? "");
  if (!terminated) return { exitCode: phase === "Succeeded" ? 0 : null, reason: status?.reason ?? phase };
  return { exitCode: terminated.exitCode, ...(terminated.reason ? { reason: terminated.reason } : {}) };
}
