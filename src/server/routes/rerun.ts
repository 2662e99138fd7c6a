import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { workflowSpecConfinement } from "../../core/confinement.js";
import { RunyardError } from "../../core/errors.js";
import { RunStatus } from "../../core/events.js";
import { refuseBodyFields } from "../api-schemas.js";
import { submitterId } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { runConfinement } from "../runs/run-confinement.js";
import { WorkflowRunSpec } from "../runs/workflow-runs.js";
import { RunParams, visibleRun } from "./visible-run.js";

const RunSubmitted = z.object({ run_id: z.string(), status: RunStatus });

/**
 * Re-run (issue 11's run page): the server submits a workflow run's stored workflow and vars
 * again. The API never gives the submitted text back (its vars may hold values a teammate should
 * not read), so the browser cannot resubmit it itself.
 */
export function rerunRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    "/api/runs/:id/rerun",
    {
      preValidation: refuseBodyFields,
      config: idempotentRoute,
      schema: {
        operationId: "rerunRun",
        summary: "Run a workflow run's workflow again",
        description:
          "Queues a new run of the same workflow text and vars, triggered by the caller and written by the first run's author, with the lesser rights of the two (quotas apply as to `POST /api/runs`). Agent and bot runs are 400." +
          idempotentRouteNote,
        tags: ["runs"],
        headers: IdempotencyKeyHeaders,
        params: RunParams,
        response: protectedResponses(201, "the new run is queued", RunSubmitted, 400, 404, 409, 429),
      },
    },
    async (request, reply) => {
      const run = await visibleRun(deps, request, request.params.id);
      const spec = run.kind === "workflow" ? WorkflowRunSpec.safeParse(run.spec) : undefined;
      if (!spec?.success) {
        throw new RunyardError(
          "INVALID_INPUT",
          `run ${run.id} is a ${run.kind} run: only workflow runs re-run`,
          { hint: "Start agent tasks and bots again with POST /api/runs or the bots API." },
        );
      }
      const principal = request.principal;
      await deps.quotas.checkSubmit(principal);
      // A re-run runs the whole workflow: a retry's kept steps are not carried over.
      const { retry: _kept, ...whole } = spec.data;
      const next = await deps.runs.submitWorkflow(
        whole,
        {
          tenantId: principal?.tenant_id ?? null,
          tokenId: submitterId(principal),
          // The lesser rights of the caller and whoever wrote the text: a platform admin's re-run
          // of a member's workflow gets a member's, not an admin's.
          confinement: runConfinement({
            submitter: { principal },
            earlier: workflowSpecConfinement.read(whole),
          }),
        },
        {
          trigger: "rerun",
          ref: run.id,
          authoredBy: run.authored_by,
          ...(run.saved_workflow !== null && run.saved_version !== null
            ? { saved: { name: run.saved_workflow, version: run.saved_version } }
            : {}),
        },
      );
      return reply.code(201).send({ run_id: next.id, status: next.status });
    },
  );
}
