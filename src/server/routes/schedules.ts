import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { apiSchemas } from "../api-schemas.js";
import { tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { jsonResponse, protectedErrorResponses } from "../error-responses.js";
import { savedTenant } from "./workflows.js";

const TenantQuery = z.strictObject({
  tenant: z.string().min(1).optional().describe("platform admins only: this tenant's schedules only"),
});

const ScheduleView = z.object({
  id: z.string(),
  tenant_id: z.string().nullable(),
  workflow: z.string().describe("the saved workflow whose `schedule:` this is"),
  workflow_version: z
    .number()
    .int()
    .describe("the version the schedule came from and runs: the workflow's live version"),
  owner: z
    .string()
    .nullable()
    .describe(
      "whose trigger it is: the token or user id that promoted that version; its runs are triggered by them",
    ),
  position: z.number().int().describe("its place in the workflow's `schedule:` list, from 0"),
  cron: z.string(),
  timezone: z.string(),
  overlap: z.enum(["skip", "queue", "cancel_previous"]),
  catch_up: z.enum(["none", "latest", "all"]),
  next_tick_at: z.string().nullable().describe("the next tick due; null when the cron has none"),
  last_tick_at: z.string().nullable().describe("the newest tick handled; null before the first"),
  last_tick: z
    .object({
      outcome: z
        .enum(["started", "skipped", "missed", "failed"])
        .describe(
          "`started` a run; `skipped` for overlap (the run still going is `run_id`), past the tenant's scheduled runs an hour, or past a run quota of the tenant or the schedule's owner (`detail` says); `missed` while no server ran; `failed` to start a run",
        ),
      run_id: z.string().nullable(),
      detail: z.string().nullable(),
      ticks: z
        .number()
        .int()
        .describe("how many ticks the entry stands for (a span of missed ticks is one entry)"),
    })
    .nullable(),
});
apiSchemas.add(ScheduleView, { id: "Schedule" });

export function scheduleRoutes(app: FastifyInstance, deps: ServerDeps): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    "/api/schedules",
    {
      schema: {
        operationId: "listSchedules",
        summary: "The schedules of the caller's tenant's saved workflows",
        description:
          "Each with its next tick, its last tick and what that did. A platform admin sees every tenant's, unless it names one with `?tenant=`.",
        tags: ["workflows"],
        querystring: TenantQuery,
        response: {
          200: jsonResponse("the schedules", z.object({ schedules: z.array(ScheduleView) })),
          ...protectedErrorResponses(400),
        },
      },
    },
    async (request) => {
      const everyTenant = tenantScope(request) === undefined && request.query.tenant === undefined;
      const tenant = everyTenant ? undefined : savedTenant(request, request.query.tenant);
      const schedules = await deps.store.schedules.list(tenant);
      return {
        schedules: schedules.map(({ workflow_name, armed_at: _armed, last_tick, ...rest }) => ({
          ...rest,
          workflow: workflow_name,
          last_tick: last_tick && {
            outcome: last_tick.outcome,
            run_id: last_tick.run_id,
            detail: last_tick.detail,
            ticks: last_tick.ticks,
          },
        })),
      };
    },
  );
}
