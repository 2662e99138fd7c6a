import { expect } from "vitest";
import { formatDiagnostic, type Workflow } from "../../src/workflow/model.js";
import { parseWorkflow } from "../../src/workflow/parse.js";

/** The workflow a text parses to, failing the test with its problems when it has any. */
export function valid(text: string, file = "wf.yaml"): Workflow {
  const { workflow, diagnostics } = parseWorkflow(text, file);
  expect(diagnostics.map(formatDiagnostic)).toEqual([]);
  return workflow!;
}

/** What `runyard validate` prints for a file with problems, one line per problem. */
export function problems(text: string): string[] {
  const { workflow, diagnostics } = parseWorkflow(text, "wf.yaml");
  expect(workflow).toBeUndefined();
  return diagnostics.map(formatDiagnostic);
}
