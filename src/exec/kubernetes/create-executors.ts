import type { JobExecutors } from "../local-runner.js";
import type { KubeCluster } from "./cluster.js";
import type { PodStartLimits } from "./pod-start.js";
import { KubeStepExecutor } from "./step-executor.js";

/**
 * Step executors of a runner with `executor: kubernetes`, in a file of their own so that the
 * Kubernetes client loads only in such a runner, never in `runyard run` or a process runner.
 */

export interface KubeStepExecutorsConfig {
  /** The cluster and namespace the runner's step Jobs go in (kube/cluster.ts). */
  cluster: KubeCluster;
  /** The image of a step's pod when the step names none (RUNYARD_JOB_IMAGE). */
  image: string;
  /** The runner's id, on every Job, so its next start finds what a crash left. */
  runnerId: string;
  /**
   * The install its server named in the last welcome (RunnerInstall.id), read at each attempt:
   * on every Job, so that a runner of the same id of another install leaves it alone.
   */
  install?: () => string | undefined;
  limits?: { memoryBytes?: number; cpus?: number };
  /** How long a pod may wait for its image and for a node. */
  start?: PodStartLimits;
}

/** A pod's image pulls may fail for this long before the step fails; it may wait this long for a node. */
export const defaultStepPodStart: PodStartLimits = { pullTimeoutMs: 120_000, scheduleTimeoutMs: 300_000 };

/**
 * The one place Kubernetes step executors are built: one per attempt of a runner with
 * `executor: kubernetes` (step-executor.ts), its image the step's own or the runner's.
 */
export function createKubeStepExecutors(config: KubeStepExecutorsConfig): JobExecutors {
  return (attempt) => {
    const install = config.install?.();
    return new KubeStepExecutor({
      cluster: config.cluster,
      image: attempt.image ?? config.image,
      owner: {
        runId: attempt.runId,
        step: attempt.step,
        attempt: attempt.attempt,
        runnerId: config.runnerId,
        ...(install !== undefined ? { install } : {}),
      },
      ...(config.limits ? { limits: config.limits } : {}),
      start: config.start ?? defaultStepPodStart,
    });
  };
}
