import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import type { AuditAction } from "../../store/index.js";
import { apiSchemas } from "../api-schemas.js";
import { requireAdmin } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import type { RefusedLogins } from "../identity/refused-logins.js";

export const auditActions = [
  "login",
  "logout",
  "token.create",
  "token.revoke",
  "user.add",
  "user.remove",
  "user.passwd",
  "secret.set",
  "secret.rm",
  "run.cancel",
  "run.approve",
  "run.reject",
  "bot.start",
  "bot.stop",
  "bot.rm",
  "bot.update",
  "bot.rollback",
  "bot.env",
  "workflow.save",
  "workflow.rm",
  "workflow.promote",
  "hook.create",
  "hook.rm",
  "forge.add",
  "forge.rm",
] as const satisfies readonly AuditAction[];

const AuditQuery = z.object({
  action: z.enum(auditActions).optional().describe("only entries of this action"),
  tenant: z
    .string()
    .min(1)
    .optional()
    .describe("platform admins only: one tenant's entries (a tenant's admin sees its own tenant's only)"),
  since: z.iso.datetime({ offset: true }).optional().describe("only entries at or after this instant"),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().min(1).optional().describe("the `next` of the previous page"),
});

const AuditEventView = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.object({
    kind: z.string().nullable().describe("admin, user, ...; null for a login that was refused"),
    user_id: z.string().nullable(),
    token_id: z.string().nullable().describe("the API token's id (never its secret); null for sessions"),
    username: z.string().nullable(),
  }),
  tenant_id: z.string().nullable(),
  address: z.string().nullable().describe("the client address the request came from"),
  action: z.enum(auditActions),
  target: z.string().nullable().describe("a username, token id, secret name or run id"),
  outcome: z.enum(["ok", "denied", "failed"]),
  details: z.record(z.string(), z.unknown()).describe("names and flags; never a password or secret"),
});
apiSchemas.add(AuditEventView, { id: "AuditEvent" });

const AuditList = z.object({
  events: z.array(AuditEventView).describe("newest first"),
  next: z.string().nullable().describe("pass as `before` for the next page; null on the last"),
});

/** The tenant an admin may read: a platform admin any (or all), a tenant's admin their own. */
function auditTenant(request: FastifyRequest, asked: string | undefined): string | undefined {
  const admin = requireAdmin(request);
  if (admin.tenant_id === null) return asked;
  if (asked !== undefined && asked !== admin.tenant_id) {
    throw new RunyardError(
      "FORBIDDEN",
      `an admin of tenant ${admin.tenant_id} reads that tenant's audit log only`,
      { hint: "Leave ?tenant= (--tenant) out." },
    );
  }
  return admin.tenant_id;
}

export function auditRoutes(app: FastifyInstance, deps: ServerDeps, refusedLogins: RefusedLogins): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    "/api/audit",
    {
      preValidation: async (request: FastifyRequest) => void requireAdmin(request),
      schema: {
        operationId: "listAudit",
        summary: "The audit log, newest first (admin only)",
        description:
          "Logins (refused ones counted in one entry per client address, minute and reason: `details.count`), logouts, token, user and secret changes, run cancels. A platform admin sees every tenant's entries; a tenant's admin that tenant's only. Never holds a password, token secret or secret value.",
        tags: ["audit"],
        querystring: AuditQuery,
        response: protectedResponses(200, "one page of entries", AuditList, 400),
      },
    },
    async (request) => {
      const query = request.query;
      const tenant = auditTenant(request, query.tenant);
      // This replica's latest counts of refused logins first, so the page shows them.
      await refusedLogins.flush();
      const page = await deps.store.audit.list({
        ...(query.action ? { action: query.action } : {}),
        ...(tenant !== undefined ? { tenantId: tenant } : {}),
        ...(query.since ? { since: query.since } : {}),
        limit: query.limit,
        ...(query.before ? { before: query.before } : {}),
      });
      return { events: page.events, next: page.next ?? null };
    },
  );
}
