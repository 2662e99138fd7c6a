import { RunyardError } from "../core/errors.js";
import type { AgentTests } from "../core/jobs/agent.js";
import type { Workflow } from "./model.js";

/**
 * An agent task's tests as a playbook: the given one, or the command as a one-step playbook, so
 * both run the same way. The server parses it to check a task before it is queued; the runner
 * runs it after the agent's turn.
 */
export function testsPlaybook(tests: AgentTests, timeoutMs: number): string {
  if (tests.playbook !== undefined) return tests.playbook;
  if (!tests.command) return "";
  // In a container the image's sh runs the command: slim images (busybox, alpine) have no bash.
  const host = tests.executor
    ? `inventory: {hosts: {tests: ${JSON.stringify({ executor: "docker", ...tests.executor })}}}\n`
    : "";
  const shell = tests.executor ? "    shell: sh\n" : "";
  return `name: tests\n${host}steps:\n  - name: test\n    command: ${JSON.stringify(tests.command)}\n${shell}    timeout_seconds: ${Math.max(1, Math.ceil(timeoutMs / 1000))}\n`;
}

/** The networks the containers of a member's tests may have: none at all. */
export const memberTestsNetworks: readonly string[] = ["none"];

/**
 * Why a member's tests may not run as written: a container host (`tests.executor`, or a host of
 * the tests playbook with `executor: docker`) on a network other than `none`. `host` would put
 * the member's code on the runner's own network, a Docker network's name or `container:ID` beside
 * other containers (another tenant's among them). Checked by the server at submit and by the
 * runner before the task starts; a platform admin's tests are not confined. Undefined: they may.
 */
export function memberTestsRefusal(workflow: Workflow): RunyardError | undefined {
  for (const [name, host] of Object.entries(workflow.hosts)) {
    const network = host.kind === "direct" ? undefined : host.container?.network;
    if (network === undefined || memberTestsNetworks.includes(network)) continue;
    const where = name === "tests" ? "tests.executor.network" : `the tests playbook's host "${name}"`;
    return new RunyardError(
      "INVALID_INPUT",
      `${where} asks for the network ${JSON.stringify(network)}; an agent task's test containers have no network (none)`,
      {
        hint: "Leave network out (it is none): a test container reaches nothing. Tests that need packages get them from the image (build it FROM your toolchain).",
      },
    );
  }
  return undefined;
}
