import type { FastifyRequest } from "fastify";
import type { AuditAction, AuditActor, AuditOutcome } from "../store/index.js";
import type { Principal } from "./auth.js";
import type { ServerDeps } from "./deps.js";

/** What a route says about an action it did (or refused); the rest comes from the request. */
export interface AuditEntry {
  action: AuditAction;
  target: string | null;
  outcome?: AuditOutcome;
  /** The tenant the action was in; default: the caller's. */
  tenant_id?: string | null;
  /** Who did it; default: the request's principal. A failed login names the username tried. */
  actor?: AuditActor;
  /**
   * Names, ids, flags: never a password, a token's secret or a secret's value. Callers pass the
   * fields they mean to record, never a request body.
   */
  details?: Record<string, unknown>;
}

export function actorOf(principal: Principal | undefined): AuditActor {
  return {
    kind: principal?.kind ?? null,
    user_id: principal?.user_id ?? null,
    token_id: principal?.token_id ?? null,
    username: principal?.username ?? null,
  };
}

/**
 * Records one audited action, after it succeeded (or was refused, for logins). A failed write is
 * logged and does not undo or fail the action, which has happened already.
 */
export async function audit(
  deps: Pick<ServerDeps, "store" | "logger">,
  request: FastifyRequest,
  entry: AuditEntry,
): Promise<void> {
  try {
    await deps.store.audit.append({
      actor: entry.actor ?? actorOf(request.principal),
      tenant_id: entry.tenant_id !== undefined ? entry.tenant_id : (request.principal?.tenant_id ?? null),
      address: request.ip,
      action: entry.action,
      target: entry.target,
      outcome: entry.outcome ?? "ok",
      details: entry.details ?? {},
    });
  } catch (error) {
    deps.logger.error({ err: error, action: entry.action, target: entry.target }, "audit entry not stored");
  }
}
