import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { RunStatus } from "../../core/events.js";
import { apiSchemas, maxNameLength, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf, submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { requestTrigger } from "../run-trigger.js";
import { BoundTrigger } from "../runs/saved-workflows.js";
import { submitterNames } from "./run-submitters.js";
import { capSubmitVariables, refuseBadVariableNames, runBodyLimit } from "./submit-limits.js";

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

export const WorkflowParams = z.object({
  name: z.string().min(1).max(maxNameLength).describe("the saved workflow's name"),
});
export const TenantQuery = z.strictObject({
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

const VersionState = z
  .enum(["live", "pending", "promoted", "superseded"])
  .describe(
    "`live`: what its hooks and schedules run; `pending`: newer, waiting for promotion; `promoted`: live before; `superseded`: older than the live version, never promoted",
  );

/** A trigger the saver may not act for, by name. */
const BlockingTrigger = BoundTrigger.extend({
  owner_name: z.string().nullable().describe("whose it is, by name"),
});

export const ScheduleEntry = z.object({
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
  live_version: z
    .number()
    .int()
    .nullable()
    .describe("the version its hooks and schedules run (the newest promoted); null: none is"),
  versions: z
    .array(
      z.object({
        version: z.number().int(),
        created_at: z.string(),
        created_by: z.string().nullable(),
        created_by_name: z.string().nullable().describe("who saved it, by name"),
        state: VersionState,
        promoted_at: z.string().nullable(),
        promoted_by: z.string().nullable(),
        promoted_by_name: z.string().nullable().describe("who promoted it, by name"),
      }),
    )
    .describe("every version of the name, newest first"),
  schedules: z.array(ScheduleEntry).describe("the schedules of this version's `schedule:`"),
});
apiSchemas.add(SavedWorkflowView, { id: "SavedWorkflow" });

const SavedAnswer = z.object({
  name: z.string(),
  version: z.number().int(),
  tenant_id: z.string().nullable(),
  created_at: z.string(),
  promoted: z
    .boolean()
    .describe(
      "true: its hooks and schedules run this version from now on; false: it waits (pending) for a tenant admin or the triggers' owner to promote it",
    ),
  waiting_for: z
    .array(BlockingTrigger)
    .describe("when pending: the hooks and schedules of someone else that keep running the live version"),
  schedules: z
    .array(ScheduleEntry)
    .describe("the schedules of this version's `schedule:`; armed only once the version is live"),
});

const SavedWorkflowSummary = z.object({
  name: z.string(),
  tenant_id: z.string().nullable(),
  latest_version: z.number().int(),
  versions: z.number().int(),
  updated_at: z.string().describe("when the newest version was saved"),
  created_by: z.string().nullable().describe("who saved the newest version"),
  live_version: z.number().int().nullable().describe("the version its hooks and schedules run"),
  pending_versions: z
    .array(z.number().int())
    .describe("versions newer than the live one, waiting for promotion (`runyard workflow promote`)"),
});
const SavedWorkflowList = z.object({ workflows: z.array(SavedWorkflowSummary).describe("sorted by name") });
const Removed = z.object({ name: z.string(), tenant_id: z.string().nullable(), removed: z.literal(true) });
const SavedRunSubmitted = z.object({
  run_id: z.string(),
  status: RunStatus,
  saved_workflow: z.string(),
  saved_version: z.number().int(),
});

/** Where a version stands against the live one. */
function versionState(
  version: { version: number; promoted_at: string | null },
  live: number | null,
): z.infer<typeof VersionState> {
  if (version.version === live) return "live";
  if (live === null || version.version > live) return "pending";
  return version.promoted_at === null ? "superseded" : "promoted";
}

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
          "Checks the workflow as `POST /api/runs` does (400 WORKFLOW_INVALID with `file:line:col` diagnostics, 413 past the size limits; a bad `schedule:` cron or time zone is one of those) and stores it as the name's next version (1 for a new name). When the caller may act for every hook and schedule bound to the name (their own, or any as a tenant admin), the version is promoted at once: its hooks run it and its `schedule:` entries replace the name's schedules. Otherwise it is stored pending (`promoted: false`, `waiting_for` naming those triggers) until promoted with `POST /api/workflows/:name/promote`. Nothing is stored when it is refused.",
        tags: ["workflows"],
        querystring: TenantQuery,
        body: SaveWorkflowBody,
        response: protectedResponses(201, "the version is saved", SavedAnswer, 400, 413),
      },
    },
    async (request, reply) => {
      const tenant = savedTenant(request, request.query.tenant);
      const saved = await deps.savedWorkflows.save({
        tenantId: tenant,
        name: request.body.name,
        workflow: request.body.workflow,
        ...(request.body.file !== undefined ? { file: request.body.file } : {}),
        saver: callerOf(request),
      });
      const promoted = saved.blocking.length === 0;
      if (promoted && saved.schedules.length > 0) deps.scheduler.wake();
      await audit(deps, request, {
        action: "workflow.save",
        target: saved.name,
        tenant_id: tenant,
        details: { version: saved.version, schedules: saved.schedules.length, promoted },
      });
      if (promoted) {
        await audit(deps, request, {
          action: "workflow.promote",
          target: saved.name,
          tenant_id: tenant,
          details: { version: saved.version, author: saved.created_by, on_save: true },
        });
      }
      const names = await submitterNames(
        deps.store,
        saved.blocking.map((trigger) => trigger.owner),
      );
      return reply.code(201).send({
        ...saved,
        promoted,
        waiting_for: saved.blocking.map((trigger) => ({
          ...trigger,
          owner_name: trigger.owner === null ? null : (names.get(trigger.owner) ?? null),
        })),
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
        response: protectedResponses(200, "the saved workflows", SavedWorkflowList, 400),
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
        description:
          "Another tenant's saved workflow is 404, as one that does not exist. `schedules` are the live version's (those that fire), shown with the live version.",
        tags: ["workflows"],
        params: WorkflowParams,
        querystring: ShowQuery,
        response: protectedResponses(200, "the saved workflow", SavedWorkflowView, 400, 404),
      },
    },
    async (request) => {
      const tenant = savedTenant(request, request.query.tenant);
      const saved = await deps.savedWorkflows.get(tenant, request.params.name, request.query.version);
      const schedules = (await deps.store.schedules.list(tenant)).filter(
        (s) => s.workflow_name === saved.name && s.workflow_version === saved.version,
      );
      const { unrestricted: _unrestricted, ...view } = saved;
      const versions = await deps.store.savedWorkflows.versions(tenant, saved.name);
      const live = versions.find((v) => v.promoted_at !== null)?.version ?? null;
      const names = await submitterNames(
        deps.store,
        versions.flatMap((v) => [v.created_by, v.promoted_by]),
      );
      const nameOf = (id: string | null) => (id === null ? null : (names.get(id) ?? null));
      return {
        ...view,
        live_version: live,
        versions: versions.map((v) => ({
          ...v,
          created_by_name: nameOf(v.created_by),
          promoted_by_name: nameOf(v.promoted_by),
          state: versionState(v, live),
        })),
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
        response: protectedResponses(200, "the saved workflow is gone", Removed, 400, 404),
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
      preValidation: capSubmitVariables,
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
        response: protectedResponses(201, "the run is queued", SavedRunSubmitted, 400, 404, 409, 429),
      },
    },
    async (request, reply) => {
      const tenant = savedTenant(request, request.query.tenant);
      refuseBadVariableNames(request.body.vars);
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
        // The caller triggers it; the run gets the lesser of their rights and the version's author's.
        owner: { tokenId: submitterId(principal), submitter: { principal } },
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
