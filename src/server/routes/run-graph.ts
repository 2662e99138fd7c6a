import { z } from "zod";
import { defaultMaxParallel, isStepGraph, type Workflow } from "../../workflow/model.js";
import { apiSchemas } from "../api-schemas.js";

const GraphStep = z.object({
  name: z.string(),
  depends: z.array(z.string()).describe("the steps it waits for, as its `depends:` names them"),
  matrix: z
    .array(z.string())
    .nullable()
    .describe(
      "a matrix step: the names of its combinations (`test (NODE=18)`), as its events name them; null: not a matrix",
    ),
  call: z
    .string()
    .nullable()
    .describe(
      "a `workflow.call` step: the saved workflow it runs as a child run (the run's `calls` has the child and its steps); null: not a call",
    ),
  rollback: z
    .boolean()
    .describe("it has a `rollback:`, which runs as `rollback: <name>` if the run fails after it succeeded"),
});

/** The shape of a workflow run's steps, for drawing: boxes, their `depends` edges, matrices. */
export const RunGraph = z.object({
  max_parallel: z.number().int(),
  steps: z.array(GraphStep).describe("in file order"),
});
apiSchemas.add(RunGraph, { id: "RunGraph" });

/**
 * The graph of a workflow's steps, what a page draws: its `depends` edges, or for steps in file
 * order a chain (each waits for the one before it); a matrix step's combinations, a call step's
 * child run.
 */
export function workflowGraph(workflow: Workflow): z.output<typeof RunGraph> {
  const graph = isStepGraph(workflow);
  return {
    max_parallel: workflow.maxParallel ?? defaultMaxParallel,
    steps: workflow.steps.map((step, index) => {
      const previous = workflow.steps[index - 1];
      // In file order each step waits for the one before it: drawn as such.
      const depends = graph ? (step.depends ?? []).map((d) => d.step) : previous ? [previous.name] : [];
      return {
        name: step.name,
        depends,
        matrix: step.matrix ? step.matrix.instances.map((instance) => instance.name) : null,
        call: step.call?.workflow ?? null,
        rollback: step.rollback !== undefined,
      };
    }),
  };
}
