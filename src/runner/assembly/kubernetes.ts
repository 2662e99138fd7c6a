import { resolve } from "node:path";
import type { Config } from "../../core/config.js";
import { RunyardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { KubeCluster } from "../../exec/kubernetes/cluster.js";
import { leftoverJobsSweep } from "../../exec/kubernetes/leftover-jobs.js";
import type { RunnerInstall } from "../../exec/runner-install.js";
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
