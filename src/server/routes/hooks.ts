import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import type { InputSpec } from "../../workflow/model.js";
import { inputPrefix } from "../../workflow/parse-inputs.js";
import { apiSchemas, maxNameLength, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf, submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { parseJsonPath } from "../hooks/json-path.js";
import { checkSavedName } from "../runs/saved-workflows.js";
import { hookDeliveryRoute } from "./hook-delivery.js";
import { savedTenant } from "./workflows.js";

/** A hook's name: plain, as it is typed in commands and shown in runs' triggers. */
const hookName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** Given secrets shorter than this are refused: a guessable secret signs anyone's deliveries. */
export const minHookSecretLength = 16;
const maxHookSecretLength = 256;
const maxHookVars = 50;

const HookParams = z.object({ name: z.string().min(1).max(maxNameLength).describe("the hook's name") });
const HookTenantQuery = z.strictObject({
  tenant: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("platform admins only: the tenant whose hook of that name this is (default: none)"),
});

const CreateHookBody = z.strictObject({
  name: z
    .string()
    .describe('unique within your tenant, as saved workflows\' names are: letters, digits, ".", "_" and "-"'),
  workflow: z.string().max(maxNameLength).describe("the saved workflow of your tenant each delivery runs"),
  secret: z
    .string()
    .optional()
    .describe(
      `the secret deliveries are signed with, ${minHookSecretLength} to ${maxHookSecretLength} characters; absent, one is generated and answered once`,
    ),
  vars: z
    .record(z.string().max(maxNameLength), z.string().max(maxNameLength))
    .default({})
    .describe(
      'inputs of the workflow (its `inputs:`, each HOOK_...) picked from each delivery\'s JSON body, e.g. {"HOOK_BRANCH": "$.ref"}',
    ),
});

const HookView = z.object({
  name: z.string(),
  tenant_id: z.string().nullable().describe("null: outside any tenant"),
  workflow: z.string().describe("the saved workflow a delivery runs"),
  vars: z.record(z.string(), z.string()).describe("variable name to the path picked from the body"),
  id: z
    .string()
    .describe("what the delivery URL names: random (a hook made when names were global: its name)"),
  url: z.string().describe("where senders deliver: this server's /api/hooks/ID"),
  created_at: z.string(),
  created_by: z
    .string()
    .nullable()
    .describe("the id (not the secret) of the token, or the user, that made it"),
});
apiSchemas.add(HookView, { id: "Hook" });

const HookCreated = HookView.extend({
  secret: z
    .string()
    .optional()
    .describe("the generated secret, answered this once and never again; absent when you gave one"),
});
const HookList = z.object({ hooks: z.array(HookView).describe("sorted by name") });
const HookRemoved = z.object({ name: z.string(), removed: z.literal(true) });

/**
 * Where a hook's deliveries go: its id, not its name, as two tenants may name hooks alike. The
 * id is random, so the URL tells an outsider neither the tenant nor the name.
 */
const deliveryPath = (id: string) => `/api/hooks/${encodeURIComponent(id)}`;

function checkHookName(name: string): void {
  if (hookName.test(name)) return;
  const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name);
  throw new RunyardError("INVALID_INPUT", `${shown} is not a valid hook name`, {
    hint: 'Hook names are letters, digits, ".", "_" and "-", start with a letter or digit and are at most 100 long.',
  });
}

function checkSecret(secret: string): void {
  if (secret.length >= minHookSecretLength && secret.length <= maxHookSecretLength && !secret.includes("\0"))
    return;
  throw new RunyardError(
    "INVALID_INPUT",
    `the secret must be ${minHookSecretLength} to ${maxHookSecretLength} characters long`,
    { hint: "Give a long random secret (e.g. `openssl rand -hex 32`), or none to have one generated." },
  );
}

/**
 * `{HOOK_BRANCH: "$.ref"}`: a delivery's values are data, never settings. Each name is an input
 * the workflow's live version declares (`inputs:`, every one `HOOK_...`: no program reads such a
 * variable as its configuration, as it may read MAKEFLAGS or OPENSSL_CONF, which
 * core/setting-names.ts lists with the rest); each path must read.
 */
function checkVars(vars: Record<string, string>, inputs: Record<string, InputSpec>, workflow: string): void {
  const names = Object.keys(vars);
  if (names.length > maxHookVars) {
    throw new RunyardError(
      "INVALID_INPUT",
      `a hook picks at most ${maxHookVars} variables, not ${names.length}`,
    );
  }
  for (const [name, path] of Object.entries(vars)) {
    if (!(name in inputs)) {
      const shown = JSON.stringify(name.slice(0, 40));
      const suggested = `${inputPrefix}${name
        .toUpperCase()
        .replace(/^HOOK_/, "")
        .replace(/[^A-Z0-9_]+/g, "_")}`.slice(0, 60);
      throw new RunyardError(
        "INVALID_INPUT",
        `vars: ${shown} is not an input of saved workflow ${workflow}: a delivery fills only the inputs its workflow declares`,
        {
          hint: `Declare it in the workflow (inputs: {${suggested}: {type: string, max_length: 200}}; names start with ${inputPrefix}, which no program reads as a setting), save it, and pick it: --var '${suggested}=${path.slice(0, 60)}'.`,
        },
      );
    }
    try {
      parseJsonPath(path);
    } catch (error) {
      if (error instanceof RunyardError)
        throw new RunyardError(error.code, `vars.${name}: ${error.message}`, { hint: error.hint });
      throw error;
    }
  }
}

/**
 * Signed webhooks: a tenant's members and admins make hooks that start one of the tenant's saved
 * workflows; senders deliver to `/api/hooks/ID`, signing each body with the hook's secret.
 * Names are per tenant: another tenant's hook is 404, as one that does not exist, and its name
 * is free.
 */
export function hookRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const view = (hook: Omit<z.infer<typeof HookView>, "url">) => ({ ...hook, url: deliveryPath(hook.id) });

  api.post(
    "/api/hooks",
    {
      schema: {
        operationId: "createHook",
        summary: "Make a signed webhook that runs a saved workflow",
        description:
          "Names are unique within the caller's tenant (409 when the tenant has one of that name; another tenant's names are free). The hook belongs to the caller's tenant and runs that tenant's saved workflow. Without `secret`, one is generated and answered once. Stored sealed; no route shows it again.",
        tags: ["hooks"],
        body: CreateHookBody,
        response: protectedResponses(201, "the hook", HookCreated, 400, 404, 409),
      },
    },
    async (request, reply) => {
      const principal = callerOf(request);
      const { name, workflow, vars } = request.body;
      checkHookName(name);
      checkSavedName(workflow);
      const given = request.body.secret;
      if (given !== undefined) checkSecret(given);
      const tenant = principal.tenant_id;
      // The saved workflow must be the tenant's own (NOT_FOUND otherwise, as for a missing one).
      const { inputs } = await deps.savedWorkflows.liveInputs(tenant, workflow);
      checkVars(vars, inputs, workflow);
      const secret = given ?? randomBytes(32).toString("hex");
      const hook = await deps.store.hooks.create({
        id: newId("hook"),
        name,
        tenant_id: tenant,
        workflow,
        vars,
        secret,
        created_by: submitterId(principal),
      });
      await audit(deps, request, {
        action: "hook.create",
        target: name,
        tenant_id: tenant,
        details: { workflow, vars: Object.keys(vars), generated_secret: given === undefined },
      });
      return reply.code(201).send({ ...view(hook), ...(given === undefined ? { secret } : {}) });
    },
  );

  api.get(
    "/api/hooks",
    {
      schema: {
        operationId: "listHooks",
        summary: "The hooks of the caller's tenant",
        description: "A platform admin sees every tenant's. Never secrets.",
        tags: ["hooks"],
        response: protectedResponses(200, "the hooks", HookList),
      },
    },
    async (request) => ({ hooks: (await deps.store.hooks.list(tenantScope(request))).map(view) }),
  );

  /**
   * The caller's tenant's hook of that name (a platform admin's: outside any tenant, or in the
   * tenant `?tenant=` names); another tenant's is NOT_FOUND, as a missing one.
   */
  const visibleHook = async (
    request: Parameters<typeof tenantScope>[0],
    name: string,
    tenant: string | undefined,
  ) => {
    const hook = await deps.store.hooks.get(savedTenant(request, tenant), name);
    if (!hook) {
      throw new RunyardError("NOT_FOUND", `no hook named ${name}`, {
        hint: "`runyard hook list` shows the hooks of your tenant.",
      });
    }
    return hook;
  };

  api.get(
    "/api/hooks/:name",
    {
      schema: {
        operationId: "getHook",
        summary: "One hook",
        description: "Never its secret. Another tenant's hook is 404.",
        tags: ["hooks"],
        params: HookParams,
        querystring: HookTenantQuery,
        response: protectedResponses(200, "the hook", HookView, 404),
      },
    },
    async (request) => view(await visibleHook(request, request.params.name, request.query.tenant)),
  );

  api.delete(
    "/api/hooks/:name",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "removeHook",
        summary: "Remove a hook",
        description:
          "Deliveries to it are 401 from then on, as to an id that never was; runs it started stay. Another tenant's hook is 404.",
        tags: ["hooks"],
        params: HookParams,
        querystring: HookTenantQuery,
        response: protectedResponses(200, "the hook is gone", HookRemoved, 404),
      },
    },
    async (request) => {
      const hook = await visibleHook(request, request.params.name, request.query.tenant);
      await deps.store.hooks.remove(hook.id);
      await audit(deps, request, { action: "hook.rm", target: hook.name, tenant_id: hook.tenant_id });
      return { name: hook.name, removed: true as const };
    },
  );

  hookDeliveryRoute(app, deps);
}
