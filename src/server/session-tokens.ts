import { decodeProtectedHeader, errors, jwtVerify, SignJWT } from "jose";
import { RunyardError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { ServerKeysRepo, UserRecord } from "../store/index.js";

/** How long a login session lasts unless `RUNYARD_SESSION_TTL_MS` says otherwise: 12 hours. */
export const defaultSessionTtlMs = 12 * 60 * 60 * 1000;
/** How long a stream token opens its run's event stream: long enough to connect, short in a log. */
export const streamTokenTtlMs = 5 * 60 * 1000;

const issuer = "runyard";
const sessionAudience = "runyard:session";
const streamAudience = "runyard:stream";
/** The only algorithm accepted: `none`, RS*, ES* and other HMACs are refused by name. */
const algorithm = "HS256";

/** A verified session JWT: who logged in, which session, when. */
export interface SessionClaims {
  type: "session";
  user_id: string;
  session_id: string;
  /** Milliseconds: compared with the user's `sessions_valid_after`, which has them too. */
  issued_at_ms: number;
  expires_at: string;
}

/** A verified stream token: one run's event stream, for whoever asked for it. */
export interface StreamClaims {
  type: "stream";
  run_id: string;
  /** The credential that asked for it: an API token id (`tok_...`) or a session id (`ses_...`). */
  source: string;
  user_id: string | null;
  issued_at_ms: number;
}

export type VerifiedJwt = SessionClaims | StreamClaims;

/** Whether a bearer credential has the shape of a JWT (three base64url parts, a JSON header). */
export function looksLikeJwt(token: string): boolean {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) return false;
  try {
    decodeProtectedHeader(token);
    return true;
  } catch {
    return false;
  }
}

/** Session and stream JWTs under the store's sealed HS256 key (`server_keys`): every replica accepts them. */
export class SessionTokens {
  private constructor(
    private readonly key: Uint8Array,
    readonly sessionTtlMs: number,
  ) {}

  static async open(keys: ServerKeysRepo, sessionTtlMs = defaultSessionTtlMs): Promise<SessionTokens> {
    const key = await keys.get("session-hs256");
    return new SessionTokens(Buffer.from(key, "base64url"), sessionTtlMs);
  }

  async issueSession(user: UserRecord, now = Date.now()): Promise<SessionClaims & { token: string }> {
    const claims: SessionClaims = {
      type: "session",
      user_id: user.id,
      session_id: newId("ses"),
      issued_at_ms: now,
      expires_at: new Date(now + this.sessionTtlMs).toISOString(),
    };
    const token = await new SignJWT({ iat_ms: now, username: user.username })
      .setProtectedHeader({ alg: algorithm, typ: "JWT" })
      .setIssuer(issuer)
      .setAudience(sessionAudience)
      .setSubject(user.id)
      .setJti(claims.session_id)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor((now + this.sessionTtlMs) / 1000))
      .sign(this.key);
    return { ...claims, token };
  }

  /** A stream token for one run, for 5 minutes but never past `notAfterMs`, the asking session's end. */
  async issueStream(
    runId: string,
    source: string,
    userId: string | null,
    now = Date.now(),
    notAfterMs?: number,
  ): Promise<{ token: string; expires_at: string }> {
    const expiresMs = Math.min(now + streamTokenTtlMs, notAfterMs ?? Number.POSITIVE_INFINITY);
    const token = await new SignJWT({ iat_ms: now, run: runId, src: source })
      .setProtectedHeader({ alg: algorithm, typ: "JWT" })
      .setIssuer(issuer)
      .setAudience(streamAudience)
      .setSubject(userId ?? source)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(expiresMs / 1000))
      .sign(this.key);
    return { token, expires_at: new Date(Math.floor(expiresMs / 1000) * 1000).toISOString() };
  }

  /** Checks signature, algorithm, issuer, audience and expiry; each failure is a 401 that says which. */
  async verify(token: string): Promise<VerifiedJwt> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: [algorithm],
        issuer,
        audience: [sessionAudience, streamAudience],
        requiredClaims: ["exp", "iat", "sub"],
      }));
    } catch (error) {
      throw new RunyardError("UNAUTHORIZED", refusal(token, error), {
        hint: 'Log in again: POST /api/auth/login {"username","password"} answers a new token.',
        cause: error,
      });
    }
    const issuedAtMs = typeof payload.iat_ms === "number" ? payload.iat_ms : Number(payload.iat ?? 0) * 1000;
    const sub = String(payload.sub);
    const audience = Array.isArray(payload.aud) ? payload.aud[0] : payload.aud;
    if (audience === streamAudience) {
      if (typeof payload.run !== "string" || typeof payload.src !== "string") {
        throw new RunyardError("UNAUTHORIZED", "the stream token names no run");
      }
      return {
        type: "stream",
        run_id: payload.run,
        source: payload.src,
        user_id: sub.startsWith("usr_") ? sub : null,
        issued_at_ms: issuedAtMs,
      };
    }
    if (typeof payload.jti !== "string")
      throw new RunyardError("UNAUTHORIZED", "the session token has no id");
    return {
      type: "session",
      user_id: sub,
      session_id: payload.jti,
      issued_at_ms: issuedAtMs,
      expires_at: new Date(Number(payload.exp) * 1000).toISOString(),
    };
  }
}

/** Why a JWT was refused, in words a user can act on. */
function refusal(token: string, error: unknown): string {
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    let alg = "?";
    try {
      alg = String(decodeProtectedHeader(token).alg);
    } catch {
      // The header was unreadable: say so below without its algorithm.
    }
    return `the token is signed with algorithm "${alg}"; only ${algorithm} tokens issued by this server are accepted`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return "the token's signature does not match: it was changed, or signed with another key";
  }
  if (error instanceof errors.JWTExpired) {
    const exp = Number(error.payload.exp);
    return `the token expired${Number.isFinite(exp) ? ` at ${new Date(exp * 1000).toISOString()}` : ""}`;
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    return `the token is not one this server issued (claim "${error.claim}" ${error.reason})`;
  }
  return "the token is not a valid JWT";
}
