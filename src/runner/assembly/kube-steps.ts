import type { Config } from "../../core/config.js";
import { RunyardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { parseMemorySize } from "../../core/memory-size.js";
import { KubeCluster } from "../../exec/kubernetes/cluster.js";
import { createKubeStepExecutors } from "../../exec/kubernetes/create-executors.js";
import { kubeLabels } from "../../exec/kubernetes/job-objects.js";
import { leftoverJobsSweep } from "../../exec/kubernetes/leftover-jobs.js";
import type { JobExecutors } from "../../exec/local-runner.js";
import type { RunnerInstall } from "../../exec/runner-install.js";
import { kubernetesRunnerLabel } from "../../workflow/model.js";

/**
 * Steps as Kubernetes Jobs (`executor: kubernetes`): the runner checks at start that it reaches
 * the cluster and may list Jobs and pods in the namespace (else it refuses to start, with the
 * URL it tried or the verb it lacks), and says so with the `kubernetes` label. `removeLeftovers`
 * deletes the step Jobs a crashed earlier life of it left, once the first welcome named the
 * install: only that install's.
 */
export async function kubernetesSteps(
  config: Config,
  env: Record<string, string | undefined>,
  connection: { id: string; logger: Logger; owner: RunnerInstall },
): Promise<{ jobs?: JobExecutors; labels: string[]; removeLeftovers?: () => Promise<void> }> {
  if (config.executor !== "kubernetes") return { labels: [] };
  const missing = [
    ...(config.jobNamespace ? [] : ["RUNYARD_JOB_NAMESPACE (job_namespace)"]),
    ...(config.jobImage ? [] : ["RUNYARD_JOB_IMAGE (job_image)"]),
  ];
  if (missing.length > 0 || !config.jobNamespace || !config.jobImage) {
    throw new RunyardError(
      "INVALID_INPUT",
      `RUNYARD_EXECUTOR=kubernetes needs ${missing.join(" and ")}: the namespace the step Jobs go in and the image of a step's pod when the step names none`,
      {
        hint: "Set both in the runner's environment or config file (job_namespace: runyard-steps, job_image: busybox:1.36), or unset RUNYARD_EXECUTOR to run steps as processes here; docs/scale.md (The Kubernetes executor).",
      },
    );
  }
  const cluster = await KubeCluster.connect(env, {
    namespace: config.jobNamespace,
    ...(config.k8sContext ? { context: config.k8sContext } : {}),
  });
  const graceSeconds = Math.max(1, Math.ceil(config.killGraceMs / 1000));
  const memoryBytes = config.jobMemory === undefined ? undefined : parseMemorySize(config.jobMemory);
  const limits = {
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    ...(config.jobCpus !== undefined ? { cpus: config.jobCpus } : {}),
  };
  return {
    jobs: createKubeStepExecutors({
      cluster,
      image: config.jobImage,
      runnerId: connection.id,
      install: () => connection.owner.id,
      ...(Object.keys(limits).length > 0 ? { limits } : {}),
      // The same limits as agents' pods: k8s_pull_timeout, k8s_schedule_timeout.
      start: { pullTimeoutMs: config.k8sPullTimeoutMs, scheduleTimeoutMs: config.k8sScheduleTimeoutMs },
    }),
    labels: [kubernetesRunnerLabel],
    removeLeftovers: leftoverJobsSweep(cluster, { [kubeLabels.component]: "step" }, connection.owner, {
      graceSeconds,
      logger: connection.logger,
      what: "step",
    }),
  };
}
