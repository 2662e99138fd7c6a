import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { apiSchemas, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { jsonResponse, protectedErrorResponses, protectedResponses } from "../error-responses.js";

/** Secret names travel as environment variables, and read like them: upper case. */
const secretName = /^[A-Z_][A-Z0-9_]*$/;
/** The largest value: a key file or a certificate chain, never bulk data. */
export const maxSecretBytes = 64 * 1024;
/** Shorter values are never masked (docs/security.md): one could not be kept out of output. */
export const minSecretLength = 4;

const SecretParams = z.object({ name: z.string().describe("the secret's name, e.g. `DEPLOY_KEY`") });
const TenantQuery = z.strictObject({
  tenant: z
    .string()
    .min(1)
    .optional()
    .describe("admin tokens only: act on this tenant's secrets instead of those outside any tenant"),
});
export const SetSecretBody = z.strictObject({
  value: z.string().describe(`the value, up to ${maxSecretBytes / 1024} KiB; never shown again by any route`),
});

const SecretView = z.object({
  name: z.string(),
  tenant_id: z.string().nullable().describe("null: outside any tenant"),
  created_at: z.string(),
  updated_at: z.string(),
  updated_by: z.string().nullable().describe("the id (not the secret) of the token that set it last"),
});
apiSchemas.add(SecretView, { id: "Secret" });

const SecretList = z.object({ secrets: z.array(SecretView).describe("sorted by name; never values") });
const SecretRemoved = z.object({
  name: z.string(),
  tenant_id: z.string().nullable(),
  removed: z.literal(true),
});

/**
 * The tenant whose secrets a call acts on: the caller's own. An admin token acts outside any
 * tenant (or on its own tenant, if it has one) unless it names one with `?tenant=`.
 */
function secretsTenant(request: FastifyRequest, asked: string | undefined): string | null {
  const scope = tenantScope(request);
  if (scope === undefined) return asked ?? request.principal?.tenant_id ?? null;
  if (asked !== undefined && asked !== scope) {
    throw new RunyardError("FORBIDDEN", "only an admin token may name a tenant (?tenant=)", {
      hint: "Leave ?tenant= (--tenant) out: a tenant's token acts on its own tenant's secrets.",
    });
  }
  return scope;
}

function checkName(name: string): void {
  if (secretName.test(name)) return;
  const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name);
  const upper = name.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
  throw new RunyardError("INVALID_INPUT", `${shown} is not a valid secret name`, {
    hint: `Secrets reach steps as environment variables: upper-case letters, digits and _, not starting with a digit${secretName.test(upper) ? ` (e.g. ${upper})` : ""}.`,
  });
}

/** Why a value cannot be stored, without ever quoting it. */
function checkValue(value: string): void {
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > maxSecretBytes) {
    throw new RunyardError(
      "INVALID_INPUT",
      `the value is ${bytes} bytes; a secret holds at most ${maxSecretBytes}`,
      { hint: "Store a key or a token, not data: keep big files elsewhere and store what unlocks them." },
    );
  }
  if (value.length < minSecretLength) {
    throw new RunyardError("INVALID_INPUT", `the value is shorter than ${minSecretLength} characters`, {
      hint: "Values that short cannot be masked in output (every `1` or `yes` would become ***); store the real secret.",
    });
  }
  if (value.includes("\0")) {
    throw new RunyardError("INVALID_INPUT", "the value holds a NUL byte, which no environment variable can", {
      hint: "Store binary secrets encoded, e.g. base64, and decode them in the step.",
    });
  }
}

export function secretRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.put(
    "/api/secrets/:name",
    {
      schema: {
        operationId: "setSecret",
        summary: "Store a secret, or replace its value",
        description:
          'Body `{"value":"..."}`. The value is sealed at rest and only ever reaches a run of the same tenant whose workflow lists the name in `secrets:`, as an environment variable; no route returns it.',
        tags: ["secrets"],
        params: SecretParams,
        querystring: TenantQuery,
        body: SetSecretBody,
        response: {
          200: jsonResponse("the value was replaced", SecretView),
          201: jsonResponse("the secret was created", SecretView),
          ...protectedErrorResponses(400, 413),
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      checkName(name);
      checkValue(request.body.value);
      const { secret, created } = await deps.store.secrets.set({
        tenant_id: secretsTenant(request, request.query.tenant),
        name,
        value: request.body.value,
        updated_by: submitterId(request.principal),
      });
      await audit(deps, request, {
        action: "secret.set",
        target: secret.name,
        tenant_id: secret.tenant_id,
        details: { created },
      });
      return reply.code(created ? 201 : 200).send(secret);
    },
  );

  api.get(
    "/api/secrets",
    {
      schema: {
        operationId: "listSecrets",
        summary: "The names of the caller's tenant's secrets",
        description: "Names and times only, never values.",
        tags: ["secrets"],
        querystring: TenantQuery,
        response: protectedResponses(200, "the secrets", SecretList, 400),
      },
    },
    async (request) => ({
      secrets: await deps.store.secrets.list(secretsTenant(request, request.query.tenant)),
    }),
  );

  api.delete(
    "/api/secrets/:name",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "removeSecret",
        summary: "Remove a secret",
        description: "Runs started afterwards that list it fail at submit (SECRET_MISSING).",
        tags: ["secrets"],
        params: SecretParams,
        querystring: TenantQuery,
        response: protectedResponses(200, "the secret is gone", SecretRemoved, 400, 404),
      },
    },
    async (request) => {
      const { name } = request.params;
      checkName(name);
      const tenant = secretsTenant(request, request.query.tenant);
      if (!(await deps.store.secrets.remove(tenant, name))) {
        throw new RunyardError(
          "NOT_FOUND",
          `no secret ${name} is stored ${tenant === null ? "outside any tenant" : `for tenant ${tenant}`}`,
          { hint: "`runyard secret list` shows the names stored for your tenant." },
        );
      }
      await audit(deps, request, { action: "secret.rm", target: name, tenant_id: tenant });
      return { name, tenant_id: tenant, removed: true as const };
    },
  );
}
