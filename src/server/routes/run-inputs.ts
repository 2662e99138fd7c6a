import type { RunRecord } from "../../store/index.js";
import type { Workflow } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { workflowMasker } from "../../workflow/secrets.js";
import { WorkflowRunSpec } from "../runs/workflow-runs.js";

/** A workflow run's workflow as it was submitted, and the vars submitted with it. */
export interface StoredWorkflow {
  workflow: Workflow;
  submittedVars: Record<string, string>;
}

/** The workflow a run was started from; undefined for other kinds, or a spec that no longer parses. */
export function storedWorkflow(run: RunRecord): StoredWorkflow | undefined {
  if (run.kind !== "workflow") return undefined;
  const spec = WorkflowRunSpec.safeParse(run.spec);
  if (!spec.success) return undefined;
  const { workflow } = parseWorkflow(spec.data.workflow, spec.data.file ?? "workflow.yaml");
  return workflow ? { workflow, submittedVars: spec.data.vars } : undefined;
}

/**
 * The variables a workflow run started with (its workflow's `vars:` under those submitted),
 * masked as the run record's `vars` are, so a page can list them apart from what steps
 * exported.
 */
export function workflowInputs({ workflow, submittedVars }: StoredWorkflow): Record<string, string> {
  const vars = { ...workflow.vars, ...submittedVars };
  return workflowMasker(workflow, vars).maskDeep(vars);
}
