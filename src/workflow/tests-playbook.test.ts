import { describe, expect, it } from "vitest";
import { parseWorkflow } from "./parse.js";
import { memberTestsRefusal, testsPlaybook } from "./tests-playbook.js";

describe("testsPlaybook", () => {
  it("runs a command as a one-step playbook, quoted as given, with the task's time in whole seconds", () => {
    const command = `python3 -c 'print("a: b")' | grep -q "a: b"`;
    const { workflow, diagnostics } = parseWorkflow(testsPlaybook({ command }, 1500), "tests.yaml");
    expect(diagnostics).toEqual([]);
    expect(workflow?.steps).toHaveLength(1);
    expect(workflow?.steps[0]).toMatchObject({
      name: "test",
      script: command,
      shell: "bash",
      timeoutSeconds: 2,
    });
  });

  it("runs a command with an executor in that container, under sh", () => {
    const { workflow, diagnostics } = parseWorkflow(
      testsPlaybook({ command: "true", executor: { image: "busybox:1.36", memory: "256m" } }, 60_000),
      "tests.yaml",
    );
    expect(diagnostics).toEqual([]);
    expect(workflow?.hosts.tests).toMatchObject({ kind: "local", container: { image: "busybox:1.36" } });
    expect(workflow?.steps[0]).toMatchObject({ targets: ["tests"], shell: "sh" });
  });

  it("hands a playbook on unchanged, and no tests as nothing", () => {
    const playbook = "name: mine\nsteps:\n  - name: lint\n    command: npm run lint\n";
    expect(testsPlaybook({ playbook, command: "ignored" }, 1000)).toBe(playbook);
    expect(testsPlaybook({}, 1000)).toBe("");
  });

  it("gives a member's test containers no network: host, a Docker network or another container's is refused", () => {
    const refusal = (tests: Parameters<typeof testsPlaybook>[0]) => {
      const { workflow } = parseWorkflow(testsPlaybook(tests, 1000), "tests.yaml");
      return workflow ? memberTestsRefusal(workflow) : new Error("does not parse");
    };
    for (const network of ["host", "bridge", "container:runyard-bot-x", "tenant-b-net"]) {
      const refused = refusal({ command: "true", executor: { image: "busybox", network } });
      expect(refused?.message, network).toBe(
        `tests.executor.network asks for the network ${JSON.stringify(network)}; an agent task's test containers have no network (none)`,
      );
    }
    const playbook =
      "inventory: {hosts: {box: {executor: docker, image: busybox, network: host}}}\nsteps:\n  - name: t\n    command: 'true'\n";
    expect(refusal({ playbook })?.message).toContain(
      'the tests playbook\'s host "box" asks for the network "host"',
    );
    expect(refusal({ command: "true", executor: { image: "busybox" } })).toBeUndefined();
    expect(refusal({ command: "true", executor: { image: "busybox", network: "none" } })).toBeUndefined();
    expect(refusal({ command: "true" })).toBeUndefined();
  });
});
