import { createHash } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { RunyardError } from "../core/errors.js";
import type { Store, TokenRecord } from "../store/types.js";

/** Who is calling: the token's record. */
export type Principal = TokenRecord;

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** Routes anyone may call: liveness and the API's own description. */
const publicPaths = new Set(["/health", "/openapi.json"]);

/**
 * The one route that takes `?access_token=`: EventSource cannot send headers. Tokens in URLs
 * end up in proxy and access logs, so no other route accepts one.
 */
const eventStreamPath = /^\/api\/runs\/[^/]+\/events$/;

/**
 * How long a user or admin token, once found, is taken on this replica's word without asking the
 * database again. A token removed from the database (revoked) may go on working here for at most
 * this long (docs/security.md); a new token works at once, as misses are never kept.
 */
export const tokenCacheMs = 2000;
/** Tokens kept at most; past it the cache starts over (a flood of distinct valid tokens). */
const tokenCacheSize = 1000;

/**
 * Token lookups of the last `tokenCacheMs`: every API request and event stream asks for its
 * token, and on PostgreSQL each lookup is a round trip. Only found user and admin tokens are kept
 * (runner tokens are refused here anyway), keyed by the secret's SHA-256, never the secret.
 */
export class TokenCache {
  private readonly entries = new Map<string, { token: TokenRecord; until: number }>();

  constructor(
    private readonly store: Store,
    private readonly ttlMs = tokenCacheMs,
    private readonly now: () => number = () => performance.now(),
  ) {}

  async find(secret: string): Promise<TokenRecord | undefined> {
    const key = createHash("sha256").update(secret, "utf8").digest("hex");
    const hit = this.entries.get(key);
    if (hit && hit.until > this.now()) return hit.token;
    if (hit) this.entries.delete(key);
    const token = await this.store.findToken(secret);
    if (token && token.kind !== "runner" && this.ttlMs > 0) {
      if (this.entries.size >= tokenCacheSize) this.entries.clear();
      this.entries.set(key, { token, until: this.now() + this.ttlMs });
    }
    return token;
  }
}

/**
 * Every route but `/health` and `/openapi.json` needs `Authorization: Bearer <token>` (the event stream may pass
 * `?access_token=`). Runner tokens only open the runner socket; they cannot call user routes.
 */
export function authHook(store: Store, tokens = new TokenCache(store)) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const path = request.url.split("?")[0] ?? "";
    if (publicPaths.has(path) || path.startsWith("/ui") || path === "/") return;
    const fromUrl = request.method === "GET" && eventStreamPath.test(path);
    const secret = bearer(request, fromUrl);
    if (!secret) {
      if (!fromUrl && queryToken(request) !== undefined) {
        throw new RunyardError("UNAUTHORIZED", "?access_token= is accepted on the event stream only", {
          hint: "Send the token as `Authorization: Bearer <token>`; only GET /api/runs/:id/events takes ?access_token=.",
        });
      }
      throw new RunyardError("UNAUTHORIZED", "this route needs a token");
    }
    const token = await tokens.find(secret);
    if (!token) throw new RunyardError("UNAUTHORIZED", "the token is not valid (revoked or mistyped)");
    if (token.kind === "runner") {
      throw new RunyardError("FORBIDDEN", "runner tokens can only connect runners", {
        hint: "Use a user or admin token for the API; `runyard up` prints the admin token.",
      });
    }
    request.principal = token;
  };
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

/** Admin-only routes call this first. */
export function requireAdmin(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (principal?.kind !== "admin") throw new RunyardError("FORBIDDEN", "only an admin token may do this");
  return principal;
}

/** The tenant whose records the caller may see: null for admins (all of them). */
export function tenantScope(request: FastifyRequest): string | null | undefined {
  const principal = request.principal;
  if (!principal || principal.kind === "admin") return undefined;
  return principal.tenant_id;
}

/**
 * Routes whose answer spans every tenant (metrics) take an admin token or a user token outside
 * any tenant; a tenant's token would learn about other tenants' work.
 */
export function requireServerWide(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (!principal || principal.tenant_id !== null) {
    throw new RunyardError("FORBIDDEN", "this route spans every tenant; a tenant's token may not read it", {
      hint: 'Use an admin token, or a user token outside any tenant: POST /api/tokens {"kind":"user","name":"prometheus"}.',
    });
  }
  return principal;
}
