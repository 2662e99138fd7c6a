import { describe, expect, it } from "vitest";
import { valid } from "../../../test/helpers/workflow-parse.js";
import { workflowGraph } from "./run-graph.js";

describe("workflowGraph", () => {
  it("gives each step its depends, a matrix step its combinations, and says which have a rollback", () => {
    const graph = workflowGraph(
      valid(`name: g
max_parallel: 3
steps:
  - name: build
    depends: []
    action: cmd.run
    args: {cmd: make}
    rollback: {action: cmd.run, args: {cmd: make clean}}
  - name: test
    depends: [build]
    matrix: {NODE: ["18", "20"]}
    action: cmd.run
    args: {cmd: "true"}
  - name: lint
    action: cmd.run
    args: {cmd: "true"}
`),
    );
    expect(graph).toEqual({
      max_parallel: 3,
      steps: [
        { name: "build", depends: [], matrix: null, rollback: true, call: null },
        {
          name: "test",
          depends: ["build"],
          matrix: ["test (NODE=18)", "test (NODE=20)"],
          rollback: false,
          call: null,
        },
        { name: "lint", depends: [], matrix: null, rollback: false, call: null },
      ],
    });
  });

  it("draws a file-order workflow with a matrix as a chain, and gives none for plain steps", () => {
    const steps = `  - name: a
    action: cmd.run
    args: {cmd: "true"}
  - name: b
    matrix: {X: ["1"]}
    action: cmd.run
    args: {cmd: "true"}
`;
    expect(workflowGraph(valid(`name: m\nsteps:\n${steps}`))?.steps.map((s) => s.depends)).toEqual([
      [],
      ["a"],
    ]);
    expect(workflowGraph(valid(`name: p\nsteps:\n${steps.split("  - name: b")[0]}`))).toBeUndefined();
  });
});
