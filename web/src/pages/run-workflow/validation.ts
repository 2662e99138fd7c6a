import { api } from "../../api.js";

/** One problem `POST /api/workflows/validate` found, at its 1-based line and column. */
export interface WorkflowProblem {
  line: number;
  col: number;
  message: string;
  hint?: string;
}

export interface WorkflowValidation {
  ok: boolean;
  errors: WorkflowProblem[];
  name?: string;
  vars?: Record<string, string>;
}

/** The server's own parser checks the text: the page and `POST /api/runs` never disagree. */
export function validateWorkflow(workflow: string): Promise<WorkflowValidation> {
  return api<WorkflowValidation>("POST", "/api/workflows/validate", { workflow });
}
