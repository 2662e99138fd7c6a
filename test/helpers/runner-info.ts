import type { RunnerInfo } from "../../src/core/protocol.js";

/**
 * What an in-process `RunnerDaemon` of a test says about itself at hello: a runner of the
 * default group on no particular machine, unsandboxed, of the platform; `overrides` say the rest.
 */
export function testRunnerInfo(
  overrides: Partial<Omit<RunnerInfo, "kinds">> = {},
): Omit<RunnerInfo, "kinds"> {
  return {
    id: "test-runner",
    group: "default",
    labels: [],
    mode: "all",
    capacity: 1,
    cpus: null,
    memory: null,
    hostname: "test",
    tenant_id: null,
    version: null,
    shared: false,
    isolation: "none",
    ...overrides,
  };
}
