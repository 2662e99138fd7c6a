import type { RunyardError } from "../../core/errors.js";
import { type ExecResult, unmeasured } from "../types.js";
import type { KubeCluster } from "./cluster.js";
import { type PodEnd, waitForPodEnd } from "./pod-end.js";
import { followPodLog } from "./pod-log.js";
import { type PodStartLimits, waitForPodStart } from "./pod-start.js";

/** One Job to run to its end: a step attempt's (step-executor.ts) or an agent turn's command's (job-launcher.ts). */
export interface JobToRun {
  cluster: KubeCluster;
  /** The Job's name: its pod is found by it. */
  name: string;
  /** Creates the Job and what it owns (its Secret). */
  create(): Promise<unknown>;
  start: PodStartLimits;
  /** The caller's cancel: the Job is deleted and the run says `canceled`. */
  signal?: AbortSignal;
  /** The command's own time limit: the Job is deleted and the run says `timeout`. */
  timeoutMs?: number;
  /** The pod's grace when its Job is deleted. */
  graceSeconds: number;
  /** The Jobs of its launcher or executor not yet deleted, which their close deletes: this one while it lives. */
  running: Set<string>;
  /** The pod's container whose log is followed from its start, each chunk handed to `onLog`. */
  container: string;
  onLog(chunk: Buffer): void;
  /**
   * Whether the followed log may lack the end of what the pod wrote (the API closed it early):
   * then the rest is read from the pod's whole log. Always, unless it says.
   */
  missed?(end: PodEnd): boolean;
  /** How long a followed log may take to end after its pod did, before what it missed is read. */
  logGraceMs: number;
}

/** How a Job's run ended: its pod's end, a stop, or a fault of the cluster's. */
export type JobRunEnd = { finished: PodEnd } | { stopped: "canceled" | "timeout" } | { failed: RunyardError };

/**
 * Runs a Job to its end: creates it, waits for its pod to start, follows its log, waits for the
 * pod's end and then for the log (at most `logGraceMs`), and reads what the log missed while the
 * pod and its whole log are still there; then deletes the Job, however it ended, tried again until
 * it is gone when the API server is away (KubeCluster.removeJob). A cancel or the time limit
 * deletes it at once.
 */
export async function runJobToEnd(job: JobToRun): Promise<JobRunEnd> {
  const { cluster, name, signal } = job;
  const stop = new AbortController();
  let stopReason: "canceled" | "timeout" | undefined;
  if (signal?.aborted) return { stopped: "canceled" };
  const onAbort = () => {
    stopReason ??= "canceled";
    stop.abort();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const timer =
    job.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          stopReason ??= "timeout";
          stop.abort();
        }, job.timeoutMs);
  let created = false;
  try {
    await job.create();
    created = true;
    job.running.add(name);
    const pod = await waitForPodStart(cluster, name, job.start, stop.signal);
    const log = followPodLog(cluster, pod.metadata?.name ?? "", job.container, job.onLog, stop.signal);
    // Awaited below only when the pod ended: a log the API refused meanwhile (it went away)
    // must not be a rejection nobody handles, which ends the runner's process.
    log.followed.catch(() => {});
    const end = await waitForPodEnd(cluster, name, stop.signal).finally(log.podEnded);
    // The log ends with the container; what the API still holds of it is read to its end.
    await Promise.race([log.followed, new Promise((done) => setTimeout(done, job.logGraceMs).unref())]);
    await log.catchUp(() => job.missed?.(end) ?? true);
    return { finished: end };
  } catch (error) {
    if (stopReason) return { stopped: stopReason };
    return { failed: cluster.fault(error, { verb: "get", resource: "pods" }) };
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (created) {
      // Tried again until gone when the API is away: the command's result does not wait for it.
      await cluster.removeJob(name, { graceSeconds: job.graceSeconds });
      job.running.delete(name);
    }
  }
}

/**
 * A Job's command or attempt as an ExecResult: the kubelet's figures are not read back (the pod's
 * limits bound them); a fault of the cluster's is kept as its error.
 */
export function jobEnded(
  startedAt: number,
  result: Partial<ExecResult> & { status: ExecResult["status"]; fault?: RunyardError; failedIndex?: number },
): ExecResult & { failedIndex?: number } {
  const { fault, ...rest } = result;
  return { ...unmeasured(startedAt, rest), ...(fault ? { fault: fault.toInfo() } : {}) };
}
