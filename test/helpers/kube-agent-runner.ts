import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ScriptedKubernetes, startScriptedKubernetes } from "../k8s-api-server/server.js";
import { type Proc, runnerToken, startCli } from "./server.js";

/** A scripted cluster, and an agent runner in `execution_mode: kubernetes` connected to `serverUrl`. */
export interface KubeAgentRunner {
  k8s: ScriptedKubernetes;
  kubeconfig: string;
  runner: Proc;
  /** Starts another runner of the same id, config and env (a restart, once the test ended `runner`). */
  restart(): Promise<Proc>;
}

/**
 * Starts the scripted API server with `namespace` and a workspace claim under `root`, writes the
 * agent runner's config.k8s.yaml keys (`extraConfig` lines added) and starts a runner from it,
 * its home and workspaces on the claim, `env` added to its environment, in `cwd` when given.
 */
export async function startKubeAgentRunner(options: {
  root: string;
  namespace: string;
  image: string;
  serverUrl: string;
  id: string;
  env: Record<string, string>;
  extraConfig?: string[];
  /** The runner's working folder (default the repository's, as startCli's). */
  cwd?: string;
}): Promise<KubeAgentRunner> {
  const { root, namespace } = options;
  const claim = join(root, "claim");
  mkdirSync(claim, { recursive: true });
  const k8s = await startScriptedKubernetes({ root: join(root, "cluster"), namespaces: [namespace] });
  k8s.addClaim(namespace, "runyard-work", claim);
  const kubeconfig = k8s.writeKubeconfig(k8s.addServiceAccount({ namespace }), namespace);
  const config = join(root, "config.k8s.yaml");
  writeFileSync(
    config,
    [
      "execution_mode: kubernetes",
      `k8s_namespace: ${namespace}`,
      `k8s_image: ${options.image}`,
      "k8s_secrets: []",
      "k8s_workspace_claim: runyard-work",
      `k8s_workspace_path: ${claim}`,
      ...(options.extraConfig ?? []),
      "max_memory_mb: 1024",
      "max_cpu_percent: 100",
      "",
    ].join("\n"),
  );
  const token = await runnerToken(options.serverUrl);
  const start = async () => {
    const runner = startCli(
      ["runner", "--server", options.serverUrl, "--token", token, "--id", options.id, "--config", config],
      {
        RUNYARD_LOG_LEVEL: "warn",
        RUNYARD_HOME: join(claim, "home"),
        RUNYARD_WORKSPACE_DIR: join(claim, "workspaces"),
        KUBECONFIG: kubeconfig,
        ...options.env,
      },
      options.cwd,
    );
    await runner.waitFor(`runner ${options.id} connected`, 60_000);
    return runner;
  };
  return { k8s, kubeconfig, runner: await start(), restart: start };
}
