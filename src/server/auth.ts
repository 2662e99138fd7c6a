import { createHash } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { RunyardError } from "../core/errors.js";
import { runnerSocketPath } from "../core/protocol.js";
import type { Store, TokenRecord, TokensRepo, UserRecord, UserRole } from "../store/index.js";
import { isPreflight } from "./http-headers.js";
import { looksLikeJwt, type SessionTokens } from "./session-tokens.js";

/**
 * Who is calling, whatever credential they showed (an API token, a session JWT, a stream token).
 * Role and tenant come from the user record at each request, never from the token, so changing
 * or removing a user takes effect at once.
 */
export interface Principal {
  /**
   * `admin`: an admin token or a user with role admin; `user`: a member or a user token;
   * `runner`: a runner token (refused on the API); `stream`: a stream token (one run's events).
   */
  kind: "admin" | "user" | "runner" | "stream";
  role: UserRole;
  /** Null: outside every tenant (a platform admin sees every tenant). */
  tenant_id: string | null;
  user_id: string | null;
  username: string | null;
  /** The API token shown (or that asked for the stream token); null for sessions. */
  token_id: string | null;
  /** The session JWT's id (`ses_...`) shown, or that asked for the stream token. */
  session_id: string | null;
  /** When the session shown ends; null for other credentials. */
  session_expires_at: string | null;
  /** Stream tokens: the one run whose events they open. */
  run_id: string | null;
}

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | undefined;
    /** On the runner socket: the runner token it showed (`runnerTokenOf`). */
    runnerToken: TokenRecord | undefined;
  }
}

/** Routes anyone may call: liveness, the API's own description, logging in, and the UI's icon. */
const publicPaths = new Set([
  "/health",
  "/health/agents",
  "/health/ready",
  "/openapi.json",
  "/api/auth/login",
  "/favicon.ico",
]);

/**
 * The routes that take `?access_token=`: EventSource cannot send headers, nor can a download link (a run's
 * raw log). Tokens in URLs end up in proxy and access logs, so no other route accepts one.
 */
const eventStreamPath = /^\/api\/runs\/([^/]+)\/(?:events|log)$/;

/**
 * A webhook delivery (`POST /api/hooks/ID`): it carries no token; its route checks the body's
 * signature against the hook's secret before anything else. No other route is let through.
 */
const hookDeliveryPath = /^\/api\/hooks\/[^/]+$/;
/** A bot's inbound webhook (`POST /api/bots/ID/hook/...`): its route checks the bot's secret. */
const botHookPath = /^\/api\/bots\/[^/]+\/hook(?:\/.*)?$/;
/** A forge's webhook delivery (`POST /api/forges/ID/webhook`): signed, as a hook's. */
const forgeDeliveryPath = /^\/api\/forges\/[^/]+\/webhook$/;
/** A replica asks the one holding a bot's runner socket to call it here (fleet/bot-relay.ts): signed. */
export const botRelayPath = "/api/fleet/bot-call";

/** The one route a runner token opens besides its socket: artifact upload for its leased jobs (checked). */
const artifactUploadPath = /^\/api\/jobs\/[^/]+\/artifacts\/[^/]+$/;

/**
 * How long a found user or admin token is trusted here without asking the database. Every revocation
 * heard empties the cache; only a lost fleet message lets a revoked token work this long
 * (docs/security.md). Misses are never kept, so a new token works at once.
 */
export const tokenCacheMs = 2000;
/** Tokens kept at most; past it the cache starts over (a flood of distinct valid tokens). */
const tokenCacheSize = 1000;

/**
 * Token lookups of the last `tokenCacheMs`: each request asks, a round trip on PostgreSQL. Only found
 * user and admin tokens are kept, keyed by the secret's SHA-256, never the secret.
 */
export class TokenCache {
  private readonly entries = new Map<string, { token: TokenRecord; until: number }>();

  constructor(
    private readonly tokens: Pick<TokensRepo, "find">,
    private readonly ttlMs = tokenCacheMs,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Forgets every kept token (a token or user was changed on this replica). */
  forget(): void {
    this.entries.clear();
  }

  async find(secret: string): Promise<TokenRecord | undefined> {
    const key = createHash("sha256").update(secret, "utf8").digest("hex");
    const hit = this.entries.get(key);
    if (hit && hit.until > this.now() && !hasExpired(hit.token)) return hit.token;
    if (hit) this.entries.delete(key);
    const token = await this.tokens.find(secret);
    if (token && token.kind !== "runner" && this.ttlMs > 0) {
      if (this.entries.size >= tokenCacheSize) this.entries.clear();
      this.entries.set(key, { token, until: this.now() + this.ttlMs });
    }
    return token;
  }
}

/**
 * Every route but `/health`, `/openapi.json` and login needs `Authorization: Bearer <token>` (the event
 * stream may pass `?access_token=`). Runner tokens open only the runner socket and the artifact upload;
 * stream tokens only their run's event stream.
 */
export function authHook(
  store: Pick<Store, "tokens" | "users" | "sessions">,
  sessions: SessionTokens,
  tokens = new TokenCache(store.tokens),
) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const path = request.url.split("?")[0] ?? "";
    if (publicPaths.has(path) || path.startsWith("/ui") || path === "/") return;
    // The runner socket takes runner tokens only; its route checks them (runnerTokenOf).
    if (path === runnerSocketPath && request.method === "GET") return;
    if (request.method === "POST" && (hookDeliveryPath.test(path) || forgeDeliveryPath.test(path))) return;
    if (request.method === "POST" && botHookPath.test(path)) return;
    // Another replica passing a bot call on: its route checks the fleet's signature (bot-relay.ts).
    if (request.method === "POST" && path === botRelayPath) return;
    // A 404 with or without a token: the routes are public (/openapi.json), so it hides nothing.
    if (request.is404) return;
    // Browsers send a CORS preflight without credentials; a listed origin's is answered before
    // this hook (http-headers.ts), any other reaches no route (404, no CORS header).
    if (isPreflight(request)) return;
    const streamRun = request.method === "GET" ? eventStreamPath.exec(path)?.[1] : undefined;
    const fromUrl = streamRun !== undefined;
    const secret = bearer(request, fromUrl);
    if (!secret) {
      if (!fromUrl && queryToken(request) !== undefined) {
        throw new RunyardError(
          "UNAUTHORIZED",
          "?access_token= is accepted on the event stream and log only",
          {
            hint: "Send the token as `Authorization: Bearer <token>`; only GET /api/runs/:id/events and /log take ?access_token=.",
          },
        );
      }
      throw new RunyardError("UNAUTHORIZED", "this route needs a token");
    }
    const principal = await resolvePrincipal(store, sessions, secret, tokens);
    if (principal.kind === "runner" && !(request.method === "PUT" && artifactUploadPath.test(path))) {
      throw new RunyardError("FORBIDDEN", "runner tokens can only connect runners", {
        hint: "Use a user or admin token for the API; `runyard up` prints the admin token.",
      });
    }
    if (
      principal.kind === "stream" &&
      (streamRun === undefined || safeDecode(streamRun) !== principal.run_id)
    ) {
      throw new RunyardError(
        "UNAUTHORIZED",
        `a stream token opens only GET /api/runs/${principal.run_id}/events (and /log)`,
        { hint: "Use your session or API token for other routes." },
      );
    }
    request.principal = principal;
  };
}

/**
 * The runner token a runner socket shows, or a 401 (none, invalid) or 403 (a user or admin token) with
 * our error body: the socket is upgraded only after this.
 */
export async function runnerTokenOf(
  store: Pick<Store, "tokens">,
  request: FastifyRequest,
): Promise<TokenRecord> {
  return runnerTokenFor(store, bearer(request, false));
}

/**
 * A runner's token by its secret: the check the runner socket makes before its upgrade, and
 * `runyard up` before it links its own runner.
 */
export async function runnerTokenFor(
  store: Pick<Store, "tokens">,
  secret: string | undefined,
): Promise<TokenRecord> {
  const howTo = "Send `Authorization: Bearer <runner token>`; make one with `runyard token create --runner`.";
  if (!secret)
    throw new RunyardError("UNAUTHORIZED", "the runner socket needs a runner token", { hint: howTo });
  const token = await store.tokens.find(secret);
  if (!token || hasExpired(token)) {
    throw new RunyardError("UNAUTHORIZED", "the runner token is not valid (revoked, expired or mistyped)", {
      hint: howTo,
    });
  }
  if (token.kind !== "runner") {
    throw new RunyardError(
      "FORBIDDEN",
      `the runner socket takes runner tokens only, not ${token.kind} tokens`,
      {
        hint: "Make a runner token with `runyard token create --runner`; user and admin tokens are for the API.",
      },
    );
  }
  return token;
}

/** Any credential to its principal; a credential that is not (or no longer) valid is a 401 saying why. */
export async function resolvePrincipal(
  store: Pick<Store, "tokens" | "users" | "sessions">,
  sessions: SessionTokens,
  secret: string,
  tokens?: TokenCache,
): Promise<Principal> {
  if (looksLikeJwt(secret)) {
    const claims = await sessions.verify(secret);
    if (claims.type === "session") {
      const user = await liveSessionUser(store, claims.user_id, claims.session_id, claims.issued_at_ms);
      return {
        ...userPrincipal(user),
        session_id: claims.session_id,
        session_expires_at: claims.expires_at,
      };
    }
    const source = claims.source.startsWith("ses_")
      ? {
          ...userPrincipal(
            await liveSessionUser(store, claims.user_id ?? "", claims.source, claims.issued_at_ms),
          ),
          session_id: claims.source,
        }
      : await tokenPrincipal(store, await store.tokens.get(claims.source), true);
    return { ...source, kind: "stream", run_id: claims.run_id };
  }
  const token = await (tokens ? tokens.find(secret) : store.tokens.find(secret));
  if (!token) throw new RunyardError("UNAUTHORIZED", "the token is not valid (revoked, expired or mistyped)");
  // A token found in the cache may have expired since: expiry holds to the second, on every replica.
  if (hasExpired(token)) throw new RunyardError("UNAUTHORIZED", `the token expired at ${token.expires_at}`);
  return tokenPrincipal(store, token, false);
}

async function liveSessionUser(
  store: Pick<Store, "users" | "sessions">,
  userId: string,
  sessionId: string,
  issuedAtMs: number,
): Promise<UserRecord> {
  const user = await store.users.get(userId);
  if (!user) throw new RunyardError("UNAUTHORIZED", "the user of this session no longer exists");
  if (issuedAtMs < Date.parse(user.sessions_valid_after)) {
    throw new RunyardError("UNAUTHORIZED", "the session was ended by a password change; log in again");
  }
  if (await store.sessions.isRevoked(sessionId)) {
    throw new RunyardError("UNAUTHORIZED", "the session was logged out; log in again");
  }
  return user;
}

async function tokenPrincipal(
  store: Pick<Store, "users">,
  token: TokenRecord | undefined,
  checkExpiry: boolean,
): Promise<Principal> {
  if (!token || (checkExpiry && hasExpired(token))) {
    throw new RunyardError("UNAUTHORIZED", "the token that asked for this stream token was revoked");
  }
  const base = { ...noCredential, token_id: token.id };
  if (token.user_id !== null) {
    const user = await store.users.get(token.user_id);
    if (!user) throw new RunyardError("UNAUTHORIZED", "the owner of this token no longer exists");
    return { ...userPrincipal(user), ...base };
  }
  return {
    ...base,
    kind: token.kind,
    role: token.kind === "admin" ? "admin" : "member",
    tenant_id: token.tenant_id,
    user_id: null,
    username: null,
  };
}

/**
 * Whether the credential behind `principal` still lives (an open event stream asks): its API token not
 * revoked or expired, its user not removed, its session not logged out, expired or ended by a password
 * change since `openedAtMs`. A stream token answers for its asker (its 5 minutes bound only the opening).
 */
export async function credentialLives(
  store: Pick<Store, "tokens" | "users" | "sessions">,
  principal: Principal,
  openedAtMs: number,
): Promise<boolean> {
  if (principal.token_id !== null) {
    const token = await store.tokens.get(principal.token_id);
    if (!token || hasExpired(token)) return false;
  }
  if (principal.session_expires_at !== null && Date.parse(principal.session_expires_at) <= Date.now())
    return false;
  if (principal.session_id !== null && (await store.sessions.isRevoked(principal.session_id))) return false;
  if (principal.user_id === null) return true;
  const user = await store.users.get(principal.user_id);
  if (!user) return false;
  return principal.session_id === null || Date.parse(user.sessions_valid_after) <= openedAtMs;
}

/** Whether an API token's `expires_at` has passed. */
function hasExpired(token: TokenRecord): boolean {
  return token.expires_at != null && Date.parse(token.expires_at) <= Date.now();
}

/** A principal's credential fields when it showed none of them. */
const noCredential = { token_id: null, session_id: null, session_expires_at: null, run_id: null };

function userPrincipal(user: UserRecord): Principal {
  return {
    kind: user.role === "admin" ? "admin" : "user",
    role: user.role,
    tenant_id: user.tenant_id,
    user_id: user.id,
    username: user.username,
    ...noCredential,
  };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function bearer(request: FastifyRequest, fromUrl: boolean): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith("Bearer ")) return header.slice(7).trim() || undefined;
  return fromUrl ? queryToken(request) : undefined;
}

function queryToken(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined;
  const fromQuery = query?.access_token;
  return typeof fromQuery === "string" && fromQuery !== "" ? fromQuery : undefined;
}

/** The principal of a route that runs after the hook (every route but the public ones). */
export function callerOf(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (!principal) throw new RunyardError("UNAUTHORIZED", "this route needs a token");
  return principal;
}

/** Admin-only routes call this first: an admin token, or a user with role admin. */
export function requireAdmin(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (principal?.role !== "admin" || principal.kind === "stream") {
    throw new RunyardError("FORBIDDEN", "only an admin may do this");
  }
  return principal;
}

/** The tenant whose records the caller may see: undefined (all) for admins outside any tenant. */
export function tenantScope(request: FastifyRequest): string | null | undefined {
  const principal = request.principal;
  if (!principal || (principal.role === "admin" && principal.tenant_id === null)) return undefined;
  return principal.tenant_id;
}

/**
 * Routes spanning every tenant (metrics) take an admin token or a user token outside any tenant; a
 * tenant's token would learn about other tenants' work.
 */
export function requireServerWide(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (!principal || principal.tenant_id !== null || principal.kind === "stream") {
    throw new RunyardError("FORBIDDEN", "this route spans every tenant; a tenant's token may not read it", {
      hint: 'Use an admin token, or a user token outside any tenant: POST /api/tokens {"kind":"user","name":"prometheus"}.',
    });
  }
  return principal;
}

/** What a signed delivery (a hook's, a forge's) acts as, so its runs count against the tenant's quotas. */
export function tenantPrincipal(tenantId: string | null): Principal {
  return {
    kind: "user",
    role: "member",
    tenant_id: tenantId,
    user_id: null,
    username: null,
    ...noCredential,
  };
}

/**
 * A platform admin (an admin outside any tenant, or the admin token; never a tenant's admin): the
 * operator, whose runs may call any destination.
 */
export function isPlatformAdmin(principal: Principal | undefined): boolean {
  return principal?.role === "admin" && principal.tenant_id === null && principal.kind !== "stream";
}

/** What a run records as its submitter: the API token's id, else the user's. */
export function submitterId(principal: Principal | undefined): string | null {
  return principal?.token_id ?? principal?.user_id ?? null;
}
