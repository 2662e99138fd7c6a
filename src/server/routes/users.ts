import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { usernamePattern, usernameRule } from "../../core/usernames.js";
import type { AuditAction, UserRecord } from "../../store/index.js";
import { triggersOfUser } from "../acting-for.js";
import { apiSchemas, maxNameLength, NoQuery, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { type Principal, requireAdmin } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { jsonResponse, protectedErrorResponses, protectedResponses } from "../error-responses.js";
import { hashPassword, newPassword } from "../identity/passwords.js";

const Username = z.string().regex(usernamePattern, usernameRule);

const Password = z.string().min(1, "the password is empty").max(1024);

export const CreateUserBody = z.strictObject({
  username: Username,
  role: z.enum(["admin", "member"]),
  tenant_id: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("the tenant the user belongs to; members need one, an admin without one is a platform admin"),
  password: Password.optional().describe("absent: a random one is made and answered once"),
});

const PasswordBody = z.strictObject({
  password: Password.optional().describe("absent: a random one is made and answered once"),
});

const UserParams = z.object({ username: Username });

const UserView = z.object({
  id: z.string(),
  username: z.string(),
  role: z.enum(["admin", "member"]),
  tenant_id: z.string().nullable().describe("null: a platform admin"),
  created_at: z.string(),
  password_changed_at: z.string(),
});
apiSchemas.add(UserView, { id: "User" });

const UserWithPassword = z.object({
  user: UserView,
  password: z
    .string()
    .optional()
    .describe("the generated password: shown this once, only its hash is stored"),
});

function userView(user: UserRecord): z.output<typeof UserView> {
  return {
    id: user.id,
    username: user.username,
    role: user.role,
    tenant_id: user.tenant_id,
    created_at: user.created_at,
    password_changed_at: user.password_changed_at,
  };
}

/** The tenant an admin manages: undefined for a platform admin (every tenant). */
function managedTenant(admin: Principal): string | undefined {
  return admin.tenant_id === null ? undefined : admin.tenant_id;
}

export function userRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const adminFirst = { preValidation: async (request: FastifyRequest) => void requireAdmin(request) };

  /** A user this admin manages; any other answers 404, as if it did not exist. */
  const managedUser = async (request: FastifyRequest, username: string): Promise<UserRecord> => {
    const tenant = managedTenant(requireAdmin(request));
    const user = await deps.store.users.findByName(username);
    if (!user || (tenant !== undefined && user.tenant_id !== tenant)) {
      throw new RunyardError("NOT_FOUND", `user ${username} does not exist`, {
        hint: "`runyard user list` shows the users.",
      });
    }
    return user;
  };

  /** Logs and audits what an admin did to `user`. */
  const recordChange = async (
    request: FastifyRequest,
    user: UserRecord,
    change: { action: AuditAction; logged: string; details: Record<string, unknown> },
  ): Promise<void> => {
    deps.logger.info({ username: user.username, by: request.principal?.username }, change.logged);
    await audit(deps, request, {
      action: change.action,
      target: user.username,
      tenant_id: user.tenant_id,
      details: { user_id: user.id, ...change.details },
    });
  };

  api.get(
    "/api/users",
    {
      ...adminFirst,
      schema: {
        operationId: "listUsers",
        summary: "Users (admin only)",
        description: "A tenant's admin sees that tenant's users.",
        tags: ["users"],
        querystring: NoQuery,
        response: protectedResponses(200, "the users", z.array(UserView)),
      },
    },
    async (request) => {
      const tenant = managedTenant(requireAdmin(request));
      const users = await deps.store.users.list(tenant !== undefined ? { tenantId: tenant } : {});
      return users.map(userView);
    },
  );

  api.post(
    "/api/users",
    {
      ...adminFirst,
      schema: {
        operationId: "createUser",
        summary: "Add a user (admin only)",
        description:
          'E.g. `{"username":"ana","role":"member","tenant_id":"acme"}`; without `password` a random one is answered once.',
        tags: ["users"],
        body: CreateUserBody,
        response: {
          201: jsonResponse("the user (and the generated password)", UserWithPassword),
          ...protectedErrorResponses(400, 409),
        },
      },
    },
    async (request, reply) => {
      const tenant = managedTenant(requireAdmin(request));
      const input = request.body;
      const tenantId = input.tenant_id ?? tenant ?? null;
      if (tenant !== undefined && tenantId !== tenant) {
        throw new RunyardError("FORBIDDEN", `an admin of tenant ${tenant} adds users to that tenant only`);
      }
      if (input.role === "member" && tenantId === null) {
        throw new RunyardError("INVALID_INPUT", "a member belongs to a tenant: give tenant_id", {
          hint: "runyard user add NAME --tenant T --role member; only admins may be outside every tenant.",
        });
      }
      const password = input.password ?? newPassword();
      const user = await deps.store.users.create({
        username: input.username,
        role: input.role,
        tenant_id: tenantId,
        password_hash: await hashPassword(password),
      });
      await recordChange(request, user, {
        action: "user.add",
        logged: "user added",
        details: { role: user.role, password_generated: input.password === undefined },
      });
      return reply
        .code(201)
        .send({ user: userView(user), ...(input.password === undefined ? { password } : {}) });
    },
  );

  api.delete(
    "/api/users/:username",
    {
      preValidation: [adminFirst.preValidation, refuseBodyFields],
      schema: {
        operationId: "removeUser",
        summary: "Remove a user (admin only)",
        description:
          "Their sessions end at once and their personal API tokens are deleted. Their hooks, schedules and forges stop: a delivery to such a hook or forge is answered 410 TRIGGER_OWNER_REMOVED and a schedule's tick is skipped, until a tenant admin makes the hook again or saves the workflow again; `stopped_triggers` lists them.",
        tags: ["users"],
        params: UserParams,
        response: {
          200: jsonResponse(
            "the user is gone",
            z.object({
              removed: UserView,
              stopped_triggers: z
                .array(
                  z.object({
                    kind: z.enum(["hook", "schedule", "forge"]),
                    name: z
                      .string()
                      .describe("the hook's name, the schedule's cron, or the forge's kind and repo"),
                    workflow: z.string().nullable().describe("the saved workflow it ran; null for a forge"),
                  }),
                )
                .describe("the user's hooks, schedules and forges, which start no run from now on"),
            }),
          ),
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request) => {
      const user = await managedUser(request, request.params.username);
      const stopped = await triggersOfUser(deps.store, user);
      await deps.store.users.remove(user.id);
      await deps.revocations.userChanged(user.id);
      await recordChange(request, user, {
        action: "user.remove",
        logged: "user removed",
        details: { role: user.role },
      });
      return { removed: userView(user), stopped_triggers: stopped };
    },
  );

  api.post(
    "/api/users/:username/password",
    {
      ...adminFirst,
      schema: {
        operationId: "setUserPassword",
        summary: "Set a user's password (admin only)",
        description:
          "Every session of the user ends at once; personal API tokens stay (revoke them apart). Without `password` a random one is answered once.",
        tags: ["users"],
        params: UserParams,
        body: PasswordBody,
        response: {
          200: jsonResponse("the user (and the generated password)", UserWithPassword),
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request) => {
      const user = await managedUser(request, request.params.username);
      const password = request.body?.password ?? newPassword();
      const updated = await deps.store.users.setPassword(user.id, await hashPassword(password));
      if (!updated) throw new RunyardError("NOT_FOUND", `user ${user.username} does not exist`);
      await deps.revocations.userChanged(user.id);
      await recordChange(request, user, {
        action: "user.passwd",
        logged: "password changed",
        details: { password_generated: request.body?.password === undefined },
      });
      return { user: userView(updated), ...(request.body?.password === undefined ? { password } : {}) };
    },
  );
}
