import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * Headers of every answer (docs/security.md, "Browsers"): none may be sniffed into HTML, framed, or
 * cached. Set on the raw response, so the event stream (writing its own head) keeps them, its own
 * `Cache-Control: no-cache, no-transform` winning over `no-store`.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cache-control": "no-store",
};

/** What a listed origin's browser may send. */
const allowedMethods = "GET, POST, PUT, DELETE";
const allowedHeaders = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Runyard-Trigger";
/** What scripts of a listed origin may read besides the simple response headers. */
const exposedHeaders = "Retry-After, Idempotency-Replayed";
/** How long a browser may keep a preflight's answer, in seconds. */
const preflightMaxAge = "600";

/** A CORS preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`. Browsers send no credentials with one. */
export function isPreflight(request: FastifyRequest): boolean {
  return (
    request.method === "OPTIONS" &&
    typeof request.headers.origin === "string" &&
    typeof request.headers["access-control-request-method"] === "string"
  );
}

/**
 * The first hook: security headers, and CORS for the exact origins listed (`RUNYARD_CORS_ORIGINS`; none
 * by default), whose preflights are answered before the token check; others get no CORS header at all.
 */
export function httpHeadersHook(corsOrigins: readonly string[]) {
  const listed = new Set(corsOrigins);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const raw = reply.raw;
    for (const [name, value] of Object.entries(securityHeaders)) raw.setHeader(name, value);
    if (listed.size === 0) return undefined;
    raw.setHeader("vary", "Origin");
    const origin = request.headers.origin;
    if (typeof origin !== "string" || !listed.has(origin)) return undefined;
    raw.setHeader("access-control-allow-origin", origin);
    if (!isPreflight(request)) {
      raw.setHeader("access-control-expose-headers", exposedHeaders);
      return undefined;
    }
    raw.setHeader("access-control-allow-methods", allowedMethods);
    raw.setHeader("access-control-allow-headers", allowedHeaders);
    raw.setHeader("access-control-max-age", preflightMaxAge);
    return reply.code(204).send();
  };
}
