import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { destinationOf, modelDestinations } from "../agents/model-endpoints.js";
import type { AgentTask } from "../core/jobs/agent.js";
import { sandboxUser } from "../exec/docker/container-launcher.js";
import type { EgressDestination } from "../exec/egress-proxy.js";
import { openToAll } from "../exec/folder-access.js";
import type { KubeCluster } from "../exec/kubernetes/cluster.js";
import { KubeJobLauncher } from "../exec/kubernetes/job-launcher.js";
import { type EgressRule, kubeLabels, labelValue } from "../exec/kubernetes/job-objects.js";
import type { PodStartLimits } from "../exec/kubernetes/pod-start.js";
import type { ProcessLauncher } from "../exec/types.js";
import type { OpenSandbox } from "./agent-sandbox.js";

/** What a runner in `execution_mode: kubernetes` brings to its turns (docs/agents.md, "Kubernetes mode"). */
export interface AgentKubernetesSettings {
  cluster: KubeCluster;
  /** `k8s_image`: Node, git, a shell, and the agent CLIs where the runner has them unless on the claim. */
  image: string;
  /** `k8s_secrets`. */
  extraSecrets: readonly string[];
  /** `k8s_workspace_claim`, mounted on the runner at `root` (`k8s_workspace_path`). */
  claim?: { name: string; root: string };
  nodeName?: string;
  limits: { memoryBytes: number; cpuMillis: number };
  start: PodStartLimits;
  runnerId: string;
  /** The install its server named in the last welcome (RunnerInstall.id), on every Job of a turn. */
  install?: () => string | undefined;
}

/** Seconds the cluster's own deadline (activeDeadlineSeconds) leaves past the runner's timeout. */
const deadlineMarginSeconds = 60;

/**
 * Prepares one turn's Jobs: labels with the run's, task's, turn's and runner's ids, the pod's
 * user (the runner's own; under a root runner nobody, for whom the folders the runner made for
 * the turn are opened, as for a container), and the NetworkPolicy's egress: DNS, the agent's
 * model endpoints and the task's git remote, each host resolved now to its addresses.
 */
export async function openKubernetesTurn(
  settings: AgentKubernetesSettings,
  turn: {
    task: AgentTask;
    cwd: string;
    runnerEnv: Readonly<Record<string, string | undefined>>;
    runnerMade: string[];
    reopened: string[];
    borrowed: string[];
    reached: EgressDestination[];
  },
): Promise<OpenSandbox> {
  const { task } = turn;
  const [uid, gid] = sandboxUser(turn.cwd)
    .split(":")
    .map((part) => Number.parseInt(part, 10));
  const asNobody = uid === 65534;
  if (asNobody) {
    for (const folder of turn.runnerMade) await openToAll(folder, true);
    for (const folder of turn.borrowed) await openToAll(folder, false);
  }
  const remote = task.repo?.url ? destinationOf(task.repo.url) : undefined;
  const destinations = [
    ...turn.reached,
    ...modelDestinations(task.agent, turn.runnerEnv, task.env),
    ...(remote ? [remote] : []),
  ];
  const install = settings.install?.();
  const launcher = new KubeJobLauncher({
    cluster: settings.cluster,
    image: settings.image,
    labels: {
      [kubeLabels.runId]: labelValue(task.run_id),
      [kubeLabels.task]: labelValue(task.key),
      [kubeLabels.turn]: String(task.turn),
      [kubeLabels.runnerId]: labelValue(settings.runnerId),
      ...(install !== undefined ? { [kubeLabels.install]: labelValue(install) } : {}),
    },
    extraSecrets: settings.extraSecrets,
    user: { uid: uid ?? 65534, gid: gid ?? 65534 },
    limits: settings.limits,
    ...(settings.claim ? { claim: settings.claim } : {}),
    ...(settings.nodeName ? { nodeName: settings.nodeName } : {}),
    egress: await egressRules(destinations),
    start: settings.start,
    deadlineSeconds: Math.ceil(task.timeout_ms / 1000) + deadlineMarginSeconds,
  });
  const close = () => launcher.close();
  const run: ProcessLauncher["run"] = async (request) => {
    // What the turn's own code added to its scratch and state folders since the last command.
    if (asNobody) for (const folder of turn.reopened) await openToAll(folder, true);
    return launcher.run(request);
  };
  return { launcher: { run, close }, notices: [], close };
}

/** Each destination's addresses, as the NetworkPolicy names them; a host that does not resolve opens nothing. */
async function egressRules(destinations: readonly EgressDestination[]): Promise<EgressRule[]> {
  const rules: EgressRule[] = [];
  for (const { host, port } of destinations) {
    const bare = host.replace(/^\[|\]$/g, "");
    if (isIP(bare)) {
      rules.push({ cidr: bare, port });
      continue;
    }
    const addresses = await lookup(bare, { all: true }).catch(() => []);
    for (const { address } of addresses) rules.push({ cidr: address, port });
  }
  return rules;
}
