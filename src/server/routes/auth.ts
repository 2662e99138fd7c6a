import { setTimeout as delay } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import {
  errorResponses,
  jsonResponse,
  protectedErrorResponses,
  protectedResponses,
} from "../error-responses.js";
import { passwordMatches } from "../identity/passwords.js";
import type { RefusedLogins } from "../identity/refused-logins.js";
import { publicRoute } from "../openapi.js";

/** The OpenRunner-style API's login body, exactly: `{"username": "...", "password": "..."}`. */
const LoginBody = z.strictObject({
  username: z.string().min(1, "username is empty").max(200),
  password: z.string().min(1, "password is empty").max(4096),
});

const Session = z.object({
  token: z.string().describe("a session JWT: send it as `Authorization: Bearer <token>`"),
  expires_at: z.string(),
  token_type: z.literal("Bearer"),
  user: z.object({
    id: z.string(),
    username: z.string(),
    role: z.enum(["admin", "member"]),
    tenant_id: z.string().nullable(),
  }),
});

const LogoutAnswer = z.object({
  logged_out: z.boolean().describe("true: the session shown has ended; false: an API token, left valid"),
  message: z.string(),
  hint: z.string().optional(),
});

const Caller = z.object({
  kind: z.enum(["admin", "user", "runner", "stream"]),
  role: z.enum(["admin", "member"]),
  tenant_id: z.string().nullable(),
  user_id: z.string().nullable(),
  username: z.string().nullable(),
  token_id: z.string().nullable(),
  token_name: z
    .string()
    .nullable()
    .describe("the name the API token shown was given (what the web UI shows when no user owns it)"),
  session_id: z.string().nullable(),
  session_expires_at: z.string().nullable(),
});

/** The same words for an unknown user and a wrong password: a login says nothing of who exists. */
const wrongCredentials = "the username or password is wrong";

export function authRoutes(app: FastifyInstance, deps: ServerDeps, refusedLogins: RefusedLogins): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    "/api/auth/login",
    {
      schema: {
        operationId: "login",
        summary: "Log in for a session token",
        description:
          "Log in (the OpenRunner-style API's login). Answers a session JWT (12 hours unless RUNYARD_SESSION_TTL_MS says otherwise). After 5 failures for one username from one address within a minute, that username from that address: 429 with Retry-After (another address, or another username from that address, is not refused). Past 50 failures a minute for a username from every address, or 100 from an address, each attempt of it is answered a second later.",
        tags: ["auth"],
        security: publicRoute,
        body: LoginBody,
        response: { 200: jsonResponse("the session", Session), ...errorResponses(400, 401, 429) },
      },
    },
    async (request) => {
      const { username, password } = request.body;
      let slowdownMs: number;
      try {
        slowdownMs = deps.loginLimiter.attempt(username, request.ip);
      } catch (error) {
        await refusedLogins.refused({
          address: request.ip,
          username,
          user: undefined,
          reason: "rate_limited",
        });
        throw error;
      }
      if (slowdownMs > 0) await delay(slowdownMs);
      const user = await deps.store.users.findByName(username);
      if (!(await passwordMatches(user?.password_hash, password)) || !user) {
        deps.logger.warn({ username, address: request.ip }, "login failed");
        await refusedLogins.refused({ address: request.ip, username, user, reason: "wrong_credentials" });
        throw new RunyardError("UNAUTHORIZED", wrongCredentials, {
          hint: "Check the username and password; an admin can set a new password with `runyard user passwd NAME`.",
        });
      }
      deps.loginLimiter.succeeded(username, request.ip);
      const session = await deps.sessions.issueSession(user);
      deps.logger.info({ username, userId: user.id, address: request.ip }, "logged in");
      await audit(deps, request, {
        action: "login",
        target: user.username,
        actor: {
          kind: user.role === "admin" ? "admin" : "user",
          user_id: user.id,
          token_id: null,
          username: user.username,
        },
        tenant_id: user.tenant_id,
        details: { session_id: session.session_id },
      });
      return {
        token: session.token,
        expires_at: session.expires_at,
        token_type: "Bearer" as const,
        user: { id: user.id, username: user.username, role: user.role, tenant_id: user.tenant_id },
      };
    },
  );

  api.post(
    "/api/auth/logout",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "logout",
        summary: "End this session",
        description:
          "The session token shown stops working at once, on every replica. With an API token it changes nothing and says so (`logged_out: false`): API tokens are revoked with DELETE /api/tokens/:id instead.",
        tags: ["auth"],
        response: {
          200: jsonResponse("the session has ended, or (an API token) nothing changed", LogoutAnswer),
          ...protectedErrorResponses(),
        },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      // A browser logged in with a pasted API token logs out by forgetting it; the token is not
      // a session, so it stays valid, and the answer says so instead of refusing.
      if (caller.session_id === null || caller.user_id === null || caller.kind === "stream") {
        return {
          logged_out: false as const,
          message: "an API token is not a session: it stays valid until it is revoked",
          hint: "Revoke an API token with `runyard token revoke ID` (DELETE /api/tokens/:id).",
        };
      }
      await deps.store.sessions.revoke(
        caller.session_id,
        caller.user_id,
        caller.session_expires_at ?? new Date(Date.now() + deps.sessions.sessionTtlMs).toISOString(),
      );
      await deps.revocations.sessionEnded(caller.session_id);
      await audit(deps, request, {
        action: "logout",
        target: caller.username,
        details: { session_id: caller.session_id },
      });
      return { logged_out: true as const, message: "the session has ended" };
    },
  );

  api.get(
    "/api/auth/whoami",
    {
      schema: {
        operationId: "whoami",
        summary: "Who the credential shown belongs to",
        tags: ["auth"],
        response: protectedResponses(200, "the caller", Caller),
      },
    },
    async (request) => {
      const { run_id: _run, ...caller } = callerOf(request);
      const token = caller.token_id ? await deps.store.tokens.get(caller.token_id) : undefined;
      return { ...caller, token_name: token?.name ?? null };
    },
  );
}
