import type { Logger } from "../../core/logger.js";
import { createDockerExecutors } from "../../exec/docker/create-docker-executors.js";
import { DockerEngine, dockerEndpoint } from "../../exec/docker/docker-engine.js";
import { removeLeftoverStepContainers } from "../../exec/docker/docker-executor.js";
import type { ContainerExecutors } from "../../exec/local-runner.js";
import type { RunnerInstall } from "../../exec/runner-install.js";
import { dockerRunnerLabel } from "../../workflow/model.js";

/** What a runner whose Docker engine answers adds for `executor: docker` steps. */
export interface RunnerDockerSteps {
  containers?: ContainerExecutors;
  labels: string[];
  engine?: DockerEngine;
  /**
   * Removes the step containers a crashed earlier life of this runner left. Called once its server
   * has named the install (the first welcome), before any job: only that install's are removed.
   */
  removeLeftovers(): Promise<void>;
}

/**
 * Steps of hosts with `executor: docker`: where the Docker engine answers (asked once, at start),
 * the runner runs them in containers and says so with the `docker` label, which such hosts
 * require. Every container carries the runner's and its install's labels.
 */
export async function dockerSteps(
  env: Record<string, string | undefined>,
  owner: RunnerInstall,
  logger: Logger,
): Promise<RunnerDockerSteps> {
  const engine = new DockerEngine(dockerEndpoint(env.DOCKER_HOST).options);
  if (!(await engine.ping())) return { labels: [], removeLeftovers: async () => undefined };
  let swept = false;
  return {
    containers: createDockerExecutors({ engine, owner }),
    labels: [dockerRunnerLabel],
    engine,
    async removeLeftovers() {
      if (swept) return;
      swept = true;
      const { removed, unlabeled } = await removeLeftoverStepContainers(engine, owner).catch(
        (error: unknown) => {
          logger.warn({ error: String(error) }, "could not list step containers left by a previous life");
          return { removed: [], unlabeled: [] };
        },
      );
      if (removed.length > 0)
        logger.warn({ containers: removed }, "removed step containers left by this runner's previous life");
      if (unlabeled.length > 0)
        logger.warn(
          { containers: unlabeled },
          `left step containers of runner ${owner.runnerId} alone: they name no install, so they may be another install's on this Docker engine; if they are this one's, remove them with docker rm -f ${unlabeled.join(" ")}`,
        );
    },
  };
}
