import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { audit } from "../audit.js";
import { callerOf } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { ScheduleEntry, savedTenant, TenantQuery, WorkflowParams } from "./workflows.js";

const PromoteBody = z.strictObject({
  version: z.number().int().min(1).describe("the pending version to make live"),
});

const PromotedAnswer = z.object({
  name: z.string(),
  version: z.number().int(),
  tenant_id: z.string().nullable(),
  previous: z.number().int().nullable().describe("the version live before"),
  schedules: z.array(ScheduleEntry).describe("the name's schedules from now on"),
});

/**
 * `POST /api/workflows/:name/promote`: a pending version becomes what the workflow's hooks and
 * schedules run (docs/security.md "Who a triggered run acts as").
 */
export function workflowPromoteRoute(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    "/api/workflows/:name/promote",
    {
      schema: {
        operationId: "promoteWorkflow",
        summary: "Make a pending version the one its hooks and schedules run",
        description:
          "A save that its saver could not act for every hook and schedule of the name for waits as pending; a tenant admin, or the one whose hooks and schedules they all are, promotes it here (403 for anyone else). The version's `schedule:` then replaces the name's schedules, owned by the promoter. 409 for a version promoted already or older than the live one. Audited as `workflow.promote`.",
        tags: ["workflows"],
        params: WorkflowParams,
        querystring: TenantQuery,
        body: PromoteBody,
        response: protectedResponses(200, "the version is live", PromotedAnswer, 400, 403, 404, 409),
      },
    },
    async (request) => {
      const tenant = savedTenant(request, request.query.tenant);
      const promoted = await deps.savedWorkflows.promote(
        tenant,
        request.params.name,
        request.body.version,
        callerOf(request),
      );
      if (promoted.schedules.length > 0) deps.scheduler.wake();
      await audit(deps, request, {
        action: "workflow.promote",
        target: promoted.name,
        tenant_id: tenant,
        details: { version: promoted.version, author: promoted.created_by, previous: promoted.previous },
      });
      return {
        name: promoted.name,
        version: promoted.version,
        tenant_id: promoted.tenant_id,
        previous: promoted.previous,
        schedules: promoted.schedules,
      };
    },
  );
}
