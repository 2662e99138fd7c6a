import type { ContainerExecutors } from "../local-runner.js";
import type { RunnerInstall } from "../runner-install.js";
import type { DockerEngine } from "./docker-engine.js";
import { DockerExecutor, hostLabel, runLabel, stepLabel } from "./docker-executor.js";

export interface DockerExecutorsConfig {
  engine: DockerEngine;
  /** The runner and its install, put on every container so its next start can remove what a crash left. */
  owner?: RunnerInstall;
  tmpDir?: string;
}

/** The one place container executors are built: one per attempt of a host with `executor: docker`. */
export function createDockerExecutors(config: DockerExecutorsConfig): ContainerExecutors {
  return (container, attempt) =>
    new DockerExecutor({
      engine: config.engine,
      container,
      ...(attempt.confined ? { confined: true } : {}),
      labels: {
        [runLabel]: attempt.runId,
        [stepLabel]: attempt.step,
        [hostLabel]: attempt.host,
        ...config.owner?.labels(),
      },
      ...(config.tmpDir !== undefined ? { tmpDir: config.tmpDir } : {}),
    });
}
