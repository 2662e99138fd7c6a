import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import type { NewToken, TokenRecord } from "../../store/index.js";
import { apiSchemas, maxNameLength, NoQuery, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf, type Principal } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";

export const CreateTokenBody = z.strictObject({
  kind: z.enum(["runner", "user", "admin"]),
  name: z.string().min(1).max(maxNameLength).default("token").describe("what the token is for"),
  group: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("runner tokens: the group a runner holding it joins"),
  tenant_id: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("the tenant whose runs and runners the token sees"),
  expires_at: z.iso
    .datetime({ offset: true })
    .optional()
    .describe("when the token stops working (ISO-8601); absent: never"),
});

const TokenView = z.object({
  id: z.string(),
  kind: z.enum(["runner", "user", "admin"]),
  name: z.string(),
  group: z.string().nullable(),
  tenant_id: z.string().nullable(),
  user_id: z.string().nullable().describe("a personal token: the user who owns it and whose rights it has"),
  created_at: z.string(),
  last_used_at: z.string().nullable(),
  expires_at: z.string().nullable(),
});
apiSchemas.add(TokenView, { id: "Token" });

const CreatedToken = TokenView.extend({
  token: z.string().describe("the secret: shown this once, never stored"),
});

const TokenParams = z.object({ id: z.string().min(1).describe("the token id (not the secret)") });

/**
 * Which tokens a caller sees and may revoke: a platform admin every token, a tenant's admin that
 * tenant's, anyone else their own (a user's personal tokens, or just the token shown).
 */
function mayManage(caller: Principal, token: TokenRecord): boolean {
  if (caller.role === "admin") return caller.tenant_id === null || token.tenant_id === caller.tenant_id;
  if (caller.user_id !== null) return token.user_id === caller.user_id;
  return token.id === caller.token_id;
}

/**
 * What a caller may create: admins any kind (a tenant's admin within its tenant); a user, a
 * personal token of their own, which has their role and tenant.
 */
function tokenToCreate(caller: Principal, body: z.output<typeof CreateTokenBody>): NewToken {
  const base = {
    kind: body.kind,
    name: body.name,
    ...(body.group ? { group: body.group } : {}),
    ...(body.expires_at ? { expires_at: body.expires_at } : {}),
  };
  if (body.kind === "user" && caller.user_id !== null) {
    if (body.tenant_id !== undefined && body.tenant_id !== caller.tenant_id) {
      throw new RunyardError("FORBIDDEN", "a personal token has its owner's tenant; leave tenant_id out");
    }
    if (body.group) throw new RunyardError("INVALID_INPUT", "group is only for runner tokens");
    return { ...base, user_id: caller.user_id, tenant_id: caller.tenant_id };
  }
  if (caller.role !== "admin") {
    throw new RunyardError("FORBIDDEN", "only an admin may create this token", {
      hint: 'Log in and ask for a personal token: POST /api/tokens {"kind":"user"} (runyard token create --user).',
    });
  }
  const tenant = body.tenant_id ?? caller.tenant_id ?? null;
  if (caller.tenant_id !== null && tenant !== caller.tenant_id) {
    throw new RunyardError(
      "FORBIDDEN",
      `an admin of tenant ${caller.tenant_id} makes tokens of that tenant only`,
    );
  }
  return { ...base, tenant_id: tenant };
}

export function tokenRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const notFound = (id: string) =>
    new RunyardError("NOT_FOUND", `token ${id} does not exist`, {
      hint: "`runyard token list` shows your tokens.",
    });

  api.post(
    "/api/tokens",
    {
      schema: {
        operationId: "createToken",
        summary: "Create a token",
        description:
          'Admins: runner tokens (optionally bound to a group), user and admin tokens, e.g. `{"kind":"runner","group":"linux"}`. A logged-in user: `{"kind":"user"}` makes a personal token with their own role and tenant.',
        tags: ["tokens"],
        body: CreateTokenBody,
        response: protectedResponses(201, "the token, with its secret shown once", CreatedToken, 400, 413),
      },
      // Who asks comes before what is asked: a caller who may make no token learns nothing about the body.
      preValidation: async (request: FastifyRequest) => {
        const caller = callerOf(request);
        if (caller.role !== "admin" && caller.user_id === null) {
          throw new RunyardError("FORBIDDEN", "only an admin or a logged-in user may create tokens");
        }
      },
    },
    async (request, reply) => {
      const { record, secret } = await deps.store.tokens.create(
        tokenToCreate(callerOf(request), request.body),
      );
      await audit(deps, request, {
        action: "token.create",
        target: record.id,
        tenant_id: record.tenant_id,
        details: { kind: record.kind, name: record.name, group: record.group, user_id: record.user_id },
      });
      deps.logger.info(
        { tokenId: record.id, kind: record.kind, by: request.principal?.username },
        "token created",
      );
      return reply.code(201).send({ ...record, token: secret });
    },
  );

  api.get(
    "/api/tokens",
    {
      schema: {
        operationId: "listTokens",
        summary: "Tokens you may manage",
        description: "Admins see every token (a tenant's admin that tenant's); a user sees their own.",
        tags: ["tokens"],
        querystring: NoQuery,
        response: protectedResponses(200, "the tokens", z.array(TokenView)),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const query =
        caller.role === "admin"
          ? caller.tenant_id === null
            ? {}
            : { tenantId: caller.tenant_id }
          : caller.user_id !== null
            ? { userId: caller.user_id }
            : undefined;
      const tokens = query
        ? await deps.store.tokens.list(query)
        : [await deps.store.tokens.get(caller.token_id ?? "")].filter((t) => t !== undefined);
      return tokens.filter((token) => mayManage(caller, token));
    },
  );

  api.delete(
    "/api/tokens/:id",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "revokeToken",
        summary: "Revoke a token",
        description:
          "It stops working at once, on every replica: a runner token's connected runners are disconnected and their jobs end as lost, and event streams opened with the token end. Another user's token answers 404, as if it did not exist.",
        tags: ["tokens"],
        params: TokenParams,
        response: protectedResponses(200, "the revoked token", z.object({ revoked: TokenView }), 404),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const token = await deps.store.tokens.get(request.params.id);
      if (!token || !mayManage(caller, token)) throw notFound(request.params.id);
      await deps.store.tokens.revoke(token.id);
      await deps.revocations.tokenRevoked(token);
      await audit(deps, request, {
        action: "token.revoke",
        target: token.id,
        tenant_id: token.tenant_id,
        details: { kind: token.kind, name: token.name, user_id: token.user_id },
      });
      deps.logger.info({ tokenId: token.id, by: caller.username ?? caller.token_id }, "token revoked");
      return { revoked: token };
    },
  );
}
