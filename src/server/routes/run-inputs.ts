import type { RunRecord } from "../../store/index.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { workflowMasker } from "../../workflow/secrets.js";
import { WorkflowRunSpec } from "../runs/workflow-runs.js";

/**
 * The variables a workflow run started with (its workflow's `vars:` under those submitted),
 * masked as the run record's `vars` are, so a page can list them apart from what steps
 * exported. Undefined for other kinds, or a spec that no longer parses.
 */
export function workflowInputs(run: RunRecord): Record<string, string> | undefined {
  if (run.kind !== "workflow") return undefined;
  const spec = WorkflowRunSpec.safeParse(run.spec);
  if (!spec.success) return undefined;
  const { workflow } = parseWorkflow(spec.data.workflow, spec.data.file ?? "workflow.yaml");
  if (!workflow) return undefined;
  const vars = { ...workflow.vars, ...spec.data.vars };
  return workflowMasker(workflow, vars).maskDeep(vars);
}
