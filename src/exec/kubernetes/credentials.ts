import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { RunyardError } from "../../core/errors.js";

/** Where a pod finds its service account, as every in-cluster client reads it. */
const serviceAccountFolder = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A cluster as the runner reaches it: the client's config, its API server and where it came from. */
export interface KubeCredentials {
  config: KubeConfig;
  /** The API server's URL, for errors that say which one could not be reached. */
  server: string;
  /** "in-cluster service account", or the kubeconfig file(s) and context. */
  source: string;
  /** The namespace the credentials name (the pod's own in-cluster, a context's `namespace:`). */
  namespace?: string;
}

/**
 * Loads cluster credentials the way Kubernetes tools do, from the runner's environment: inside a
 * pod, its service account (unless a kubeconfig is named); else the files of `KUBECONFIG`
 * (colon-separated, merged in order), else `~/.kube/config`; `context` picks a context of those
 * files (the config file's `k8s_context`). Throws KUBE_NO_CREDENTIALS when there are none.
 */
export async function loadKubeCredentials(
  env: Readonly<Record<string, string | undefined>>,
  context?: string,
): Promise<KubeCredentials> {
  const config = new KubeConfig();
  const files = (env.KUBECONFIG ?? "").split(delimiter).filter((file) => file !== "");
  const inCluster =
    files.length === 0 &&
    context === undefined &&
    Boolean(env.KUBERNETES_SERVICE_HOST) &&
    existsSync(join(serviceAccountFolder, "token"));
  let source: string;
  let namespace: string | undefined;
  if (inCluster) {
    config.loadFromCluster();
    source = "in-cluster service account";
    namespace = config.getContextObject(config.getCurrentContext())?.namespace;
  } else {
    const candidates = files.length > 0 ? files : [join(env.HOME || homedir(), ".kube", "config")];
    const found = candidates.filter((file) => existsSync(file));
    if (found.length === 0) {
      throw new RunyardError(
        "KUBE_NO_CREDENTIALS",
        `no cluster credentials: not in a pod with a service account, and ${files.length > 0 ? `none of KUBECONFIG's files exists (${files.join(", ")})` : `${candidates[0]} does not exist`}`,
      );
    }
    try {
      const [first, ...rest] = found;
      config.loadFromFile(first as string);
      for (const file of rest) {
        const more = new KubeConfig();
        more.loadFromFile(file);
        config.mergeConfig(more, true);
      }
    } catch (error) {
      throw new RunyardError(
        "KUBE_NO_CREDENTIALS",
        `cannot read the kubeconfig ${found.join(", ")}: ${(error as Error).message}`,
      );
    }
    if (context !== undefined) {
      if (!config.getContextObject(context)) {
        const known = config.getContexts().map((entry) => entry.name);
        throw new RunyardError(
          "KUBE_NO_CREDENTIALS",
          `the kubeconfig ${found.join(", ")} has no context ${JSON.stringify(context)}${known.length > 0 ? `; it has ${known.join(", ")}` : ""}`,
          {
            hint: "Name one of its contexts in k8s_context, or leave k8s_context out to use its current context.",
          },
        );
      }
      config.setCurrentContext(context);
    }
    const current = config.getCurrentContext();
    source = `${found.join(delimiter)} (context ${current || "none"})`;
    namespace = config.getContextObject(current)?.namespace;
  }
  const server = config.getCurrentCluster()?.server;
  if (!server) {
    throw new RunyardError(
      "KUBE_NO_CREDENTIALS",
      `the cluster credentials from ${source} name no API server`,
    );
  }
  return { config, server, source, ...(namespace ? { namespace } : {}) };
}
