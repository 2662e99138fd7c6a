import type { AgentTests } from "../core/jobs/agent.js";

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
