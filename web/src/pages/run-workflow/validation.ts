import { answer, api, type Schema } from "../../api.js";

export type WorkflowValidation = Schema<"WorkflowValidation">;

/** One problem `POST /api/workflows/validate` found, at its 1-based line and column. */
export type WorkflowProblem = WorkflowValidation["errors"][number];

/** The server's own parser checks the text: the page and `POST /api/runs` never disagree. */
export function validateWorkflow(workflow: string): Promise<WorkflowValidation> {
  return answer(api.POST("/api/workflows/validate", { body: { workflow } }));
}
