import type { Logger } from "../../core/logger.js";
import type { RunnerInstall } from "../runner-install.js";
import type { KubeCluster } from "./cluster.js";
import { kubeLabels, labelValue } from "./job-objects.js";

/** The Jobs a starting runner found under its runner id: deleted, or left alone and named. */
export interface LeftoverJobs {
  /** Its own install's (made by an earlier life of it that died mid-job): deleted with their pods. */
  deleted: string[];
  /** Of its runner id but of no install (made before Jobs named theirs): maybe another install's. */
  unlabeled: string[];
}

/**
 * Deletes the Jobs of `selector` an earlier life of this runner left: those of its runner id and
 * of the install its server named in the welcome. Another install's, whose runner may share the
 * id and the namespace, are left alone; so are those that name no install, and they are listed.
 * With a server too old to name an install (`install` undefined) the runner's own Jobs name none,
 * and those are deleted as before. Their jobs are not adopted: the server ends a job its runner no
 * longer holds, and retries it by its rules.
 */
export async function deleteLeftoverJobs(
  cluster: KubeCluster,
  selector: Record<string, string>,
  owner: { runnerId: string; install: string | undefined },
  graceSeconds: number,
): Promise<LeftoverJobs> {
  const jobs = await cluster.findJobs({ ...selector, [kubeLabels.runnerId]: labelValue(owner.runnerId) });
  const mine = owner.install === undefined ? undefined : labelValue(owner.install);
  const deleted: string[] = [];
  const unlabeled: string[] = [];
  for (const job of jobs) {
    const name = job.metadata?.name;
    if (!name) continue;
    const install = job.metadata?.labels?.[kubeLabels.install];
    if (install === mine) deleted.push(name);
    else if (install === undefined) unlabeled.push(name);
  }
  await Promise.all(deleted.map((name) => cluster.deleteJob(name, { graceSeconds })));
  return { deleted, unlabeled };
}

/**
 * What a runner calls on every welcome: the first one, which names the install, deletes the Jobs
 * of `selector` its earlier life left and logs them; Jobs of its runner id that name no install
 * are logged with the command that removes them, for an operator who knows they are this
 * install's. Later welcomes do nothing (a reconnect leaves the runner's own running Jobs alone).
 */
export function leftoverJobsSweep(
  cluster: KubeCluster,
  selector: Record<string, string>,
  owner: RunnerInstall,
  options: { graceSeconds: number; logger: Logger; what: string },
): () => Promise<void> {
  let swept = false;
  return async () => {
    if (swept) return;
    swept = true;
    const { logger, what } = options;
    const left = await deleteLeftoverJobs(
      cluster,
      selector,
      { runnerId: owner.runnerId, install: owner.id },
      options.graceSeconds,
    ).catch((error: unknown) => {
      logger.warn(
        { error: String(error), namespace: cluster.namespace },
        `could not delete the ${what} Jobs left by this runner's previous life`,
      );
      return { deleted: [], unlabeled: [] };
    });
    if (left.deleted.length > 0)
      logger.warn(
        { jobs: left.deleted, namespace: cluster.namespace },
        `deleted ${what} Jobs left by this runner's previous life`,
      );
    if (left.unlabeled.length > 0)
      logger.warn(
        { jobs: left.unlabeled, namespace: cluster.namespace },
        `left ${what} Jobs of runner ${owner.runnerId} alone: they name no install, so they may be another install's in this namespace; if they are this one's, remove them with kubectl delete job -n ${cluster.namespace} ${left.unlabeled.join(" ")}`,
      );
  };
}
