import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { workflowProblemsError } from "../../workflow/model.js";
import { apiSchemas } from "../api-schemas.js";
import type { ServerDeps } from "../deps.js";
import { jsonResponse, protectedErrorResponses } from "../error-responses.js";
import { runBodyLimit } from "./submit-limits.js";

const ValidateWorkflowBody = z.strictObject({
  workflow: z
    .string()
    .describe("the workflow YAML text; an empty text is answered with the problem, not refused"),
});

const WorkflowProblem = z.object({
  line: z.number().int().describe("1-based"),
  col: z.number().int().describe("1-based"),
  message: z.string(),
  hint: z.string().optional().describe("how to fix it"),
});

const WorkflowValidation = z.object({
  ok: z.boolean().describe("true when `POST /api/runs` would accept the workflow's YAML"),
  errors: z.array(WorkflowProblem).describe("every problem at once, in the order of the text"),
  name: z.string().optional().describe("the workflow's name, when it parses"),
  vars: z
    .record(z.string(), z.string())
    .optional()
    .describe("the workflow's `vars:` defaults, when it parses: what a form of variables starts from"),
});
apiSchemas.add(WorkflowValidation, { id: "WorkflowValidation" });

/**
 * The editor of the web UI checks a workflow as it is typed, with the very parser that runs check
 * before queueing one (so the page and `POST /api/runs` never disagree). Nothing is stored or run.
 */
export function validateRoutes(
  app: FastifyInstance,
  deps: Pick<ServerDeps, "workflowLimits" | "parseWorkflow">,
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    "/api/workflows/validate",
    {
      bodyLimit: runBodyLimit,
      schema: {
        operationId: "validateWorkflow",
        summary: "Check a workflow without running it",
        description:
          "Parses and checks the workflow as `POST /api/runs` does and answers every problem with its line and column; stores and runs nothing. Secrets of `secrets:` are not looked up. A workflow over the size limits (its text or its form with YAML aliases expanded past `max_workflow_bytes`, or more than 100 aliases) is refused with 400 WORKFLOW_TOO_LARGE, as `POST /api/runs` refuses it.",
        tags: ["runs"],
        body: ValidateWorkflowBody,
        response: {
          200: jsonResponse(
            "the verdict (a workflow with problems is still a 200, unless it passes a size limit)",
            WorkflowValidation,
          ),
          ...protectedErrorResponses(400, 413),
        },
      },
    },
    async (request) => {
      const { workflow, diagnostics } = await deps.parseWorkflow(
        request.body.workflow,
        "workflow.yaml",
        deps.workflowLimits,
      );
      // Past a limit nothing else was read: the request is refused as a submit would be.
      if (diagnostics.some((d) => d.limit)) throw workflowProblemsError("workflow.yaml", diagnostics);
      const errors = diagnostics.map(({ line, col, message, hint }) => ({
        line,
        col,
        message,
        ...(hint ? { hint } : {}),
      }));
      if (!workflow) return { ok: false, errors };
      return { ok: true, errors, name: workflow.name, vars: workflow.vars };
    },
  );
}
