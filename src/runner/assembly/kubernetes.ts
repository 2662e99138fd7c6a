import { resolve } from "node:path";
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
import type { AgentKubernetesSettings } from "../agent-kubernetes.js";

/** A turn's limits when the config names none: as a sandboxed container's defaults. */
const defaultMemoryMb = 2048;
const defaultCpuPercent = 200;

/**
 * What agent turns get on a runner in `execution_mode: kubernetes`: its cluster, reached with
 * the credentials Kubernetes tools use and checked now, so that a runner that cannot use it
 * refuses to start with the URL it tried. `removeLeftovers` deletes the Jobs an earlier life of it
 * left, once the first welcome named the install: only that install's.
 */
export async function agentKubernetesSettings(
  config: Config,
  env: Readonly<Record<string, string | undefined>>,
  connection: { id: string; home: string; logger: Logger; owner: RunnerInstall },
): Promise<AgentKubernetesSettings & { removeLeftovers: () => Promise<void> }> {
  if (!config.k8sImage) {
    throw new RunyardError("INVALID_INPUT", "execution_mode kubernetes needs k8s_image (RUNYARD_K8S_IMAGE)", {
      hint: "Name the image each agent turn's pod runs: Node, git and a shell that the cluster's nodes can pull (docker/agent.Dockerfile builds one).",
    });
  }
  const cluster = await KubeCluster.connect(env, {
    ...(config.k8sNamespace ? { namespace: config.k8sNamespace } : {}),
    ...(config.k8sContext ? { context: config.k8sContext } : {}),
  }).catch((error: unknown) => {
    if (error instanceof RunyardError) {
      throw new RunyardError(error.code, `the runner cannot use its Kubernetes cluster: ${error.message}`, {
        hint: error.hint,
      });
    }
    throw error;
  });
  connection.logger.info(
    { server: cluster.server, namespace: cluster.namespace, credentials: cluster.credentials.source },
    "agent turns run as Kubernetes Jobs",
  );
  const { owner } = connection;
  return {
    removeLeftovers: leftoverJobsSweep(cluster, {}, owner, {
      graceSeconds: 5,
      logger: connection.logger,
      what: "agent turns'",
    }),
    cluster,
    image: config.k8sImage,
    extraSecrets: config.k8sSecrets,
    ...(config.k8sWorkspaceClaim
      ? {
          claim: {
            name: config.k8sWorkspaceClaim,
            root: resolve(config.k8sWorkspacePath ?? connection.home),
          },
        }
      : {}),
    ...(config.k8sNodeName ? { nodeName: config.k8sNodeName } : {}),
    limits: {
      memoryBytes: Math.round((config.agentMaxMemoryMb ?? defaultMemoryMb) * 1024 * 1024),
      cpuMillis: Math.round((config.agentMaxCpuPercent ?? defaultCpuPercent) * 10),
    },
    start: { pullTimeoutMs: config.k8sPullTimeoutMs, scheduleTimeoutMs: config.k8sScheduleTimeoutMs },
    runnerId: connection.id,
    install: () => owner.id,
  };
}

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
  const missing = [
    ...(config.jobNamespace ? [] : ["RUNYARD_JOB_NAMESPACE (job_namespace)"]),
    ...(config.jobImage ? [] : ["RUNYARD_JOB_IMAGE (job_image)"]),
  ];
  if (!config.jobNamespace || !config.jobImage) {
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
