import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { RunStatus } from "../../core/events.js";
import { isVariableName, variableNameHint } from "../../workflow/yaml-reader.js";
import { apiSchemas, maxNameLength, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { isPlatformAdmin, submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedErrorResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { requestTrigger } from "../run-trigger.js";
import { runBodyLimit } from "./runs.js";

const SaveWorkflowBody = z.strictObject({
  name: z
    .string()
    .min(1, "name is empty: give the saved workflow a name, e.g. deploy")
    .max(maxNameLength)
    .describe('the name to save it under: letters, digits, ".", "_" and "-"'),
  workflow: z
    .string()
    .min(1, "workflow is empty: send the YAML text of a workflow")
    .describe("the workflow YAML text, checked as `POST /api/runs` checks it"),
  file: z
    .string()
    .max(maxNameLength)
    .optional()
    .describe("the file name shown in validation messages; default NAME.yaml"),
});

const StartSavedRunBody = z.strictObject({
  vars: z
    .record(z.string().max(maxNameLength), z.coerce.string())
    .default({})
    .describe("variables over the workflow's `vars:`; values are taken as strings"),
  version: z.number().int().min(1).optional().describe("the version to run; default the newest"),
});

const WorkflowParams = z.object({
  name: z.string().min(1).max(maxNameLength).describe("the saved workflow's name"),
});
const TenantQuery = z.strictObject({
  tenant: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe(
      "platform admins only: act on this tenant's saved workflows instead of those outside any tenant",
    ),
});
const ShowQuery = TenantQuery.extend({
  version: z.coerce.number().int().min(1).optional().describe("this version instead of the newest"),
});

const ScheduleEntry = z.object({
  cron: z.string(),
  timezone: z.string(),
  overlap: z.enum(["skip", "queue", "cancel_previous"]),
  catch_up: z.enum(["none", "latest", "all"]),
  next_tick_at: z.string().nullable(),
});

const SavedWorkflowView = z.object({
  name: z.string(),
  version: z.number().int(),
  tenant_id: z.string().nullable().describe("null: outside any tenant"),
  file: z.string(),
  created_at: z.string(),
  created_by: z
    .string()
    .nullable()
    .describe("the id (not the secret) of the token, or the user, that saved it"),
  workflow: z.string().describe("the YAML text of this version"),
  versions: z
    .array(z.object({ version: z.number().int(), created_at: z.string(), created_by: z.string().nullable() }))
    .describe("every version of the name, newest first"),
  schedules: z.array(ScheduleEntry).describe("the schedules of this version's `schedule:`"),
});
apiSchemas.add(SavedWorkflowView, { id: "SavedWorkflow" });

const SavedAnswer = z.object({
  name: z.string(),
  version: z.number().int(),
  tenant_id: z.string().nullable(),
  created_at: z.string(),
  schedules: z.array(ScheduleEntry),
});

const SavedWorkflowSummary = z.object({
  name: z.string(),
  tenant_id: z.string().nullable(),
  latest_version: z.number().int(),
  versions: z.number().int(),
  updated_at: z.string().describe("when the newest version was saved"),
  created_by: z.string().nullable().describe("who saved the newest version"),
});
const SavedWorkflowList = z.object({ workflows: z.array(SavedWorkflowSummary).describe("sorted by name") });
const Removed = z.object({ name: z.string(), tenant_id: z.string().nullable(), removed: z.literal(true) });
const SavedRunSubmitted = z.object({
  run_id: z.string(),
  status: RunStatus,
  saved_workflow: z.string(),
  saved_version: z.number().int(),
});

/**
 * The tenant whose saved workflows a call acts on: the caller's own. A platform admin acts
 * outside any tenant unless it names one with `?tenant=`.
 */
export function savedTenant(request: FastifyRequest, asked: string | undefined): string | null {
  const scope = tenantScope(request);
  if (scope === undefined) return asked ?? request.principal?.tenant_id ?? null;
  if (asked !== undefined && asked !== scope) {
    throw new RunyardError("FORBIDDEN", "only a platform admin may name a tenant (?tenant=)", {
      hint: "Leave ?tenant= out: a tenant's token acts on its own tenant's saved workflows.",
    });
  }
  return scope;
}

export function workflowRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    "/api/workflows",
    {
      bodyLimit: runBodyLimit,
      schema: {
        operationId: "saveWorkflow",
        summary: "Save a workflow under a name, as its next version",
        description:
          "Checks the workflow as `POST /api/runs` does (400 WORKFLOW_INVALID with `file:line:col` diagnostics, 413 past the size limits; a bad `schedule:` cron or time zone is one of those) and stores it as the name's next version (1 for a new name). Its `schedule:` entries replace the name's schedules. Nothing is stored when it is refused.",
        tags: ["workflows"],
        querystring: TenantQuery,
        body: SaveWorkflowBody,
        response: {
          201: {
            description: "the version is saved",
            content: { "application/json": { schema: SavedAnswer } },
          },
          ...protectedErrorResponses(400, 413),
        },
      },
    },
    async (request, reply) => {
      const tenant = savedTenant(request, request.query.tenant);
      const saved = await deps.savedWorkflows.save({
        tenantId: tenant,
        name: request.body.name,
        workflow: request.body.workflow,
        ...(request.body.file !== undefined ? { file: request.body.file } : {}),
        createdBy: submitterId(request.principal),
        unrestricted: isPlatformAdmin(request.principal),
      });
      if (saved.schedules.length > 0) deps.scheduler.wake();
      await audit(deps, request, {
        action: "workflow.save",
        target: saved.name,
        tenant_id: tenant,
        details: { version: saved.version, schedules: saved.schedules.length },
      });
      return reply.code(201).send({
        name: saved.name,
        version: saved.version,
        tenant_id: saved.tenant_id,
        created_at: saved.created_at,
        schedules: saved.schedules,
      });
    },
  );

  api.get(
    "/api/workflows",
    {
      schema: {
        operationId: "listWorkflows",
        summary: "The saved workflows of the caller's tenant",
        description: "A platform admin sees every tenant's, unless it names one with `?tenant=`.",
        tags: ["workflows"],
        querystring: TenantQuery,
        response: {
          200: {
            description: "the saved workflows",
            content: { "application/json": { schema: SavedWorkflowList } },
          },
          ...protectedErrorResponses(400),
        },
      },
    },
    async (request) => {
      const everyTenant = tenantScope(request) === undefined && request.query.tenant === undefined;
      const tenant = everyTenant ? undefined : savedTenant(request, request.query.tenant);
      return { workflows: await deps.store.savedWorkflows.list(tenant) };
    },
  );

  api.get(
    "/api/workflows/:name",
    {
      schema: {
        operationId: "getWorkflow",
        summary: "A saved workflow: its newest version (or `?version=`), its versions and schedules",
        description: "Another tenant's saved workflow is 404, as one that does not exist.",
        tags: ["workflows"],
        params: WorkflowParams,
        querystring: ShowQuery,
        response: {
          200: {
            description: "the saved workflow",
            content: { "application/json": { schema: SavedWorkflowView } },
          },
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request) => {
      const tenant = savedTenant(request, request.query.tenant);
      const saved = await deps.savedWorkflows.get(tenant, request.params.name, request.query.version);
      const schedules = (await deps.store.schedules.list(tenant))
        .filter((s) => s.workflow_name === saved.name && s.workflow_version === saved.version)
        .map((s) => ({
          cron: s.cron,
          timezone: s.timezone,
          overlap: s.overlap,
          catch_up: s.catch_up,
          next_tick_at: s.next_tick_at,
        }));
      const { unrestricted: _unrestricted, ...view } = saved;
      return {
        ...view,
        versions: await deps.store.savedWorkflows.versions(tenant, saved.name),
        schedules,
      };
    },
  );

  api.delete(
    "/api/workflows/:name",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "removeWorkflow",
        summary: "Remove a saved workflow: every version and its schedules",
        description: "Runs it started stay as they are. Another tenant's is 404.",
        tags: ["workflows"],
        params: WorkflowParams,
        querystring: TenantQuery,
        response: {
          200: {
            description: "the saved workflow is gone",
            content: { "application/json": { schema: Removed } },
          },
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request) => {
      const tenant = savedTenant(request, request.query.tenant);
      const { name } = request.params;
      if (!(await deps.store.savedWorkflows.remove(tenant, name))) {
        throw new RunyardError("NOT_FOUND", `no saved workflow named ${name}`, {
          hint: "`runyard workflow list` shows the saved workflows of your tenant.",
        });
      }
      await audit(deps, request, { action: "workflow.rm", target: name, tenant_id: tenant });
      return { name, tenant_id: tenant, removed: true as const };
    },
  );

  api.post(
    "/api/workflows/:name/runs",
    {
      config: idempotentRoute,
      schema: {
        operationId: "runWorkflow",
        summary: "Run a saved workflow",
        description:
          "Queues a run of the newest version (or `version`), answering like `POST /api/runs`; the run records the saved workflow and version it runs. Quotas apply as to `POST /api/runs`. Another tenant's is 404." +
          idempotentRouteNote,
        tags: ["workflows"],
        headers: IdempotencyKeyHeaders,
        params: WorkflowParams,
        querystring: TenantQuery,
        body: StartSavedRunBody,
        response: {
          201: {
            description: "the run is queued",
            content: { "application/json": { schema: SavedRunSubmitted } },
          },
          ...protectedErrorResponses(400, 404, 409, 429),
        },
      },
    },
    async (request, reply) => {
      const tenant = savedTenant(request, request.query.tenant);
      const badName = Object.keys(request.body.vars).find((name) => !isVariableName(name));
      if (badName !== undefined) {
        const shown = JSON.stringify(badName.length > 40 ? `${badName.slice(0, 40)}...` : badName);
        throw new RunyardError("INVALID_INPUT", `vars: ${shown} is not a valid variable name`, {
          hint: `Variables travel as environment variables: ${variableNameHint} (as in a workflow's vars:).`,
        });
      }
      const principal = request.principal;
      // Before anything is stored: a missing name or a quota reached leaves no run behind.
      await deps.savedWorkflows.get(tenant, request.params.name, request.body.version);
      await deps.quotas.checkSubmit(principal);
      const run = await deps.savedWorkflows.startRun({
        tenantId: tenant,
        name: request.params.name,
        ...(request.body.version !== undefined ? { version: request.body.version } : {}),
        vars: request.body.vars,
        trigger: requestTrigger(request),
        owner: { tokenId: submitterId(principal), unrestrictedOutbound: isPlatformAdmin(principal) },
      });
      return reply.code(201).send({
        run_id: run.id,
        status: run.status,
        saved_workflow: run.saved_workflow ?? request.params.name,
        saved_version: run.saved_version ?? 0,
      });
    },
  );
}
