import { describe, expect, it } from "vitest";
import { parseWorkflow } from "./parse.js";
import { testsPlaybook } from "./tests-playbook.js";

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
});
