import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { RunyardError } from "../core/errors.js";
import { assertExhaustive } from "../core/exhaustive.js";
import type { Logger } from "../core/logger.js";
import type { IdempotencyKeysRepo } from "../store/index.js";
import type { Principal } from "./auth.js";
import { requestHash } from "./idempotency-hash.js";

/** How long a key and its answer are kept unless RUNYARD_IDEMPOTENCY_KEY_HOURS says otherwise. */
export const defaultIdempotencyKeyHours = 24;

/** A request unanswered this long (far past any creating request) died with its server: its key is freed. */
export const idempotencyClaimTimeoutMs = 60_000;

/** What a caller told `IDEMPOTENCY_KEY_IN_USE` waits before sending the same request again. */
const inUseRetryAfterSeconds = 1;

/** The header a replayed answer carries. */
export const replayedHeader = "idempotency-replayed";

const keyPattern = /^[\x20-\x7e]{1,255}$/;

/** The route option that makes a creating route take `Idempotency-Key`. */
export const idempotentRoute = { idempotent: true } as const;

/**
 * For a creating route that answers only after waiting (a bot's start, a chat's answer): its claim lasts
 * `waitMs(request)` longer, so a retry meanwhile is told IDEMPOTENCY_KEY_IN_USE, not given the key.
 */
export function idempotentWaitingRoute(waitMs: (request: FastifyRequest) => number) {
  return { idempotent: true, idempotentWaitMs: waitMs } as const;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route creates something and takes `Idempotency-Key` (idempotency.ts). */
    idempotent?: boolean;
    /** How long the route may wait before it answers this (validated) request, in ms. */
    idempotentWaitMs?: (request: FastifyRequest) => number;
  }
  interface FastifyRequest {
    /** The key this request serves, once claimed; its answer is kept or its claim released. */
    idempotencyClaim: { owner: string; key: string; claimId: string } | undefined;
    /** The hash of the request its key stands for: set by the JSON thread for a large body. */
    idempotencyRequestHash: string | undefined;
  }
}

/** The `Idempotency-Key` header as the OpenAPI document shows it on a creating route. */
export const IdempotencyKeyHeaders = z.looseObject({
  "idempotency-key": z
    .string()
    .regex(keyPattern)
    .describe(
      "1 to 255 printable ASCII characters, new for each thing to create (a UUID). The same key with the same request answers the first 2xx answer again (`Idempotency-Replayed: true`) and creates nothing; with another request it is 409 IDEMPOTENCY_KEY_REUSED; while the first is still being answered, 409 IDEMPOTENCY_KEY_IN_USE with Retry-After. Only 2xx answers are kept. Keys are per user, kept 24 hours by default (docs/api.md).",
    )
    .optional(),
});

/** A sentence for a creating route's description (parameters' own descriptions do not reach the document). */
export const idempotentRouteNote =
  " Takes an `Idempotency-Key` header (1 to 255 printable ASCII characters, new for each thing to create), so a client may send the request again after a 503 or a lost connection without creating twice: the same key and request answer the first 2xx answer again, marked `Idempotency-Replayed: true`; the key with another request is 409 IDEMPOTENCY_KEY_REUSED; while the first is still being answered, 409 IDEMPOTENCY_KEY_IN_USE with Retry-After (docs/api.md).";

export interface IdempotencySettings {
  /** How long a key and its answer are kept after its first request, in ms. */
  keepMs: number;
}

/** Whose keys these are: every token and session of a user share them; a token without a user has its own. */
function ownerOf(principal: Principal | undefined): string | undefined {
  if (principal?.user_id) return `user:${principal.user_id}`;
  if (principal?.token_id) return `token:${principal.token_id}`;
  return undefined;
}

/** Whether `request` is for a creating route and names a key: its body is then hashed as it is read. */
export function takesIdempotencyKey(request: FastifyRequest): boolean {
  return request.routeOptions.config.idempotent === true && request.headers["idempotency-key"] !== undefined;
}

function keyOf(request: FastifyRequest): string | undefined {
  const value = request.headers["idempotency-key"];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    throw new RunyardError("IDEMPOTENCY_KEY_INVALID", "Idempotency-Key was sent more than once");
  }
  if (!keyPattern.test(value)) {
    const why =
      value.length === 0
        ? "is empty"
        : value.length > 255
          ? `is ${value.length} characters long; at most 255 are taken`
          : "holds a character that is not printable ASCII";
    throw new RunyardError("IDEMPOTENCY_KEY_INVALID", `Idempotency-Key ${why}`);
  }
  return value;
}

function shown(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}...` : key);
}

/**
 * The hooks behind `idempotentRoute`. Before the route's checks the request is hashed as it came (a
 * large body on the JSON thread). Past its caps and schema the key is claimed in the store (one claim
 * wins across replicas): a key answered before replays its answer and the route is not run. A 2xx
 * answer is kept under the key; anything else frees it. A request the caps refuse costs no claim.
 */
export function idempotencyHooks(
  keys: IdempotencyKeysRepo,
  settings: IdempotencySettings,
  logger: Logger,
): {
  preValidation: (request: FastifyRequest) => Promise<void>;
  preHandler: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;
  onSend: (request: FastifyRequest, reply: FastifyReply, payload: unknown) => Promise<unknown>;
} {
  return {
    // Global hooks run before a route's: the body is hashed before a route rewrites it (OpenRunner submit).
    async preValidation(request) {
      if (!request.routeOptions.config.idempotent || keyOf(request) === undefined) return;
      request.idempotencyRequestHash ??= requestHash(request, request.body);
    },

    async preHandler(request, reply) {
      if (!request.routeOptions.config.idempotent) return undefined;
      const key = keyOf(request);
      const owner = ownerOf(request.principal);
      const hash = request.idempotencyRequestHash;
      if (key === undefined || owner === undefined || hash === undefined) return undefined;
      const claim = await keys.claim({
        owner,
        key,
        request_hash: hash,
        keep_ms: settings.keepMs,
        claim_timeout_ms:
          idempotencyClaimTimeoutMs + (request.routeOptions.config.idempotentWaitMs?.(request) ?? 0),
      });
      switch (claim.state) {
        case "claimed":
          request.idempotencyClaim = { owner, key, claimId: claim.claim_id };
          return undefined;
        case "answered":
          return reply
            .code(claim.answer.status)
            .header(replayedHeader, "true")
            .type("application/json; charset=utf-8")
            .send(claim.answer.body);
        case "reused":
          throw new RunyardError(
            "IDEMPOTENCY_KEY_REUSED",
            `Idempotency-Key ${shown(key)} was sent before with another request (${request.method} ${request.url.split("?")[0]} and its body must be the same)`,
          );
        case "in_use":
          throw new RunyardError(
            "IDEMPOTENCY_KEY_IN_USE",
            `the first request with Idempotency-Key ${shown(key)} is still being answered`,
            { details: { retry_after_seconds: inUseRetryAfterSeconds } },
          );
        default:
          return assertExhaustive(claim);
      }
    },

    async onSend(request, reply, payload) {
      const claim = request.idempotencyClaim;
      if (!claim) return payload;
      request.idempotencyClaim = undefined;
      const { owner, key, claimId } = claim;
      const record =
        reply.statusCode >= 200 && reply.statusCode < 300 && typeof payload === "string"
          ? () =>
              keys.complete(owner, key, claimId, { status: reply.statusCode, body: payload }).then(() => {})
          : () => keys.release(owner, key, claimId);
      try {
        await record();
      } catch (error) {
        // The database is away: record once it is back, so the client's retry gets the answer (or a free
        // key) within seconds, not IDEMPOTENCY_KEY_IN_USE until the claim times out.
        logger.warn(
          { err: error, status: reply.statusCode },
          "could not record an Idempotency-Key's answer yet",
        );
        void recordLater(record, logger);
      }
      return payload;
    },
  };
}

/** Retries `record` (0.25 s doubling to 4 s) until the key's claim would have timed out anyway. */
async function recordLater(record: () => Promise<void>, logger: Logger): Promise<void> {
  const deadline = Date.now() + idempotencyClaimTimeoutMs;
  for (let wait = 250; Date.now() + wait < deadline; wait = Math.min(wait * 2, 4000)) {
    await new Promise((resolve) => setTimeout(resolve, wait).unref());
    try {
      await record();
      return;
    } catch {}
  }
  logger.warn("an Idempotency-Key's answer could not be recorded; its claim times out instead");
}
