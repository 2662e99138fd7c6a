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

  it("draws a file-order workflow as a chain, with a matrix or without", () => {
    const steps = `  - name: a
    action: cmd.run
    args: {cmd: "true"}
  - name: b
    matrix: {X: ["1"]}
    action: cmd.run
    args: {cmd: "true"}
`;
    expect(workflowGraph(valid(`name: m\nsteps:\n${steps}`)).steps.map((s) => s.depends)).toEqual([
      [],
      ["a"],
    ]);
    const plain = `${steps.split("  - name: b")[0]}  - name: c\n    action: cmd.run\n    args: {cmd: "true"}\n`;
    expect(workflowGraph(valid(`name: p\nsteps:\n${plain}`)).steps.map((s) => [s.name, s.depends])).toEqual([
      ["a", []],
      ["c", ["a"]],
    ]);
  });
});
