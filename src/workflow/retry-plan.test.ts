// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { describe, expect, test } from "vitest";
import { valid } from "../../test/helpers/workflow-parse.js";
import type { StepStatus } from "../core/events.js";
import { type HostProgress, hostKey } from "./resume.js";
import { downstreamOf, firstUnfinishedStep, keptSteps, missingExports } from "./retry-plan.js";

const step = (name: string, extra = "") =>
  `  - name: ${name}\n    action: shell.run\n    args: {script: "true"}\n${extra}`;

/** What a run did: each step on host `local` ended with the status given. */
function outcomes(
  statuses: Record<string, StepStatus>,
  exports: Record<string, Record<string, string>> = {},
) {
  const hosts = new Map<string, HostProgress>();
  for (const [name, status] of Object.entries(statuses)) {
    hosts.set(hostKey(name, "local"), {
      summary: { name, host: "local", status, exit_code: status === "success" ? 0 : null, attempts: 1 },
      exports: exports[name] ?? {},
      attempts: 1,
      inFlight: false,
    });
  }
  return hosts;
}

const kept = (list: { step: string }[]) => list.map((k) => k.step);

describe("what a retry keeps", () => {
  const inOrder = valid(`name: w\nsteps:\n${step("a")}${step("b")}${step("c")}${step("d")}`);

  test("in file order: the first step that did not succeed is where it starts, and every step before it is kept", () => {
    const run = outcomes({ a: "success", b: "success", c: "failed", d: "skipped" });
    expect(firstUnfinishedStep(inOrder, run)).toBe("c");
    expect(kept(keptSteps(inOrder, "c", run))).toEqual(["a", "b"]);
    expect(kept(keptSteps(inOrder, "b", run))).toEqual(["a"]);
  });

  test("a step that never ended (the run was interrupted) is where it starts", () => {
    expect(firstUnfinishedStep(inOrder, outcomes({ a: "success" }))).toBe("b");
    expect(
      firstUnfinishedStep(inOrder, outcomes({ a: "success", b: "success", c: "success", d: "success" })),
    ).toBe(undefined);
  });

  test("from a later step than the failure, the failed step and those skipped after it run again", () => {
    const run = outcomes({ a: "success", b: "failed", c: "skipped", d: "skipped" });
    expect(kept(keptSteps(inOrder, "d", run))).toEqual(["a"]);
  });

  test("a step skipped by its when is kept while the steps before it are", () => {
    const run = outcomes({ a: "success", b: "skipped", c: "failed", d: "skipped" });
    expect(kept(keptSteps(inOrder, "c", run))).toEqual(["a", "b"]);
  });

  test("in a graph: every step that succeeded and does not depend on the step is kept", () => {
    const graph = valid(
      `name: g\nsteps:\n${step("a", "    depends: []\n")}${step("b", "    depends: [a]\n")}${step("lone", "    depends: []\n")}${step("after", "    depends: [lone, b]\n")}`,
    );
    expect([...downstreamOf(graph, "a")].sort()).toEqual(["a", "after", "b"]);
    const run = outcomes({ a: "success", b: "success", lone: "failed", after: "skipped" });
    expect(firstUnfinishedStep(graph, run)).toBe("lone");
    expect(kept(keptSteps(graph, "lone", run))).toEqual(["a", "b"]);
    expect(kept(keptSteps(graph, "b", run))).toEqual(["a"]);
  });

  test("a matrix step is kept whole, combination by combination, or not at all", () => {
    const matrix = valid(
      `name: m\nsteps:\n${step("t", "    matrix:\n      N: ['1', '2']\n")}${step("after")}`,
    );
    const all = outcomes({ "t (N=1)": "success", "t (N=2)": "success", after: "failed" });
    expect(kept(keptSteps(matrix, "after", all))).toEqual(["t (N=1)", "t (N=2)"]);
    const half = outcomes({ "t (N=1)": "success", "t (N=2)": "failed" });
    expect(firstUnfinishedStep(matrix, half)).toBe("t");
    expect(kept(keptSteps(matrix, "after", half))).toEqual([]);
  });
});

describe("an edited workflow on a retry", () => {
  const original = valid(`name: w
steps:
  - name: build
    action: shell.run
    args: {script: 'echo "ART=1" >> "$RUNYARD_OUTPUT"'}
  - name: test
    action: shell.run
    args: {script: 'echo "REPORT=r" >> "$RUNYARD_OUTPUT"; exit 1'}
  - name: ship
    action: shell.run
    args: {script: 'echo "\${ART} \${REPORT} \${HOME}"'}
`);
  const run = outcomes({ build: "success", test: "failed" }, { build: { ART: "1" }, test: { REPORT: "r" } });

  test("is refused at the step that reads an export nobody kept and no step that runs makes, naming who made it", () => {
    const text = `name: w
steps:
  - name: build
    action: shell.run
    args: {script: 'echo "ART=1" >> "$RUNYARD_OUTPUT"'}
  - name: test
    action: shell.run
    args: {script: 'true'}
  - name: ship
    action: shell.run
    args: {script: 'echo "\${ART} \${REPORT} \${HOME}"'}
`;
    const edited = valid(text);
    const keep = keptSteps(original, "test", run);
    const problems = missingExports(
      edited,
      keep,
      {},
      { steps: original.steps, exported: { ART: "1", REPORT: "r" } },
      "e.yaml",
    );
    expect(problems).toEqual([
      expect.objectContaining({
        file: "e.yaml",
        line: 9,
        col: 5,
        message: 'step "ship" needs ${REPORT}, an export no kept step made and no step that runs makes',
      }),
    ]);
    expect(problems[0]?.hint).toContain('step "test" exported it in the run retried');
    // ${ART} was kept; ${HOME} is no step's export: the runner gives it.
    expect(
      missingExports(edited, keep, { REPORT: "given" }, { steps: original.steps, exported: {} }, "e.yaml"),
    ).toEqual([]);
  });
});
