import { type ErrorCode, errorTable } from "../core/errors.js";
import type { RunnerInfo } from "../core/protocol.js";
import type { TokenRecord } from "../store/index.js";

/** Why a hello is refused: the error the runner is sent before its socket closes (4003). */
export interface HelloRefusal {
  code: Extract<ErrorCode, "RUNNER_TENANT_MISMATCH" | "RUNNER_SHARED_TENANT" | "RUNNER_CANNOT_ISOLATE">;
  message: string;
  hint: string;
  /** The close reason. */
  reason: string;
}

/**
 * The runner a hello may connect as, or why it may not. A runner token bound to a group or
 * tenant decides them; a runner saying another tenant is refused, not quietly moved, so an
 * operator who meant another tenant finds out at once.
 */
export function admitRunner(token: TokenRecord, advertised: RunnerInfo): RunnerInfo | HelloRefusal {
  if (token.tenant_id !== null && advertised.tenant_id != null && advertised.tenant_id !== token.tenant_id) {
    return {
      code: "RUNNER_TENANT_MISMATCH",
      message: `runner "${advertised.id}" says tenant "${advertised.tenant_id}" (RUNYARD_TENANT_ID / ADOS_TENANT_ID), but its token belongs to tenant "${token.tenant_id}"`,
      hint: errorTable.RUNNER_TENANT_MISMATCH.hint,
      reason: "tenant disagrees with the runner token",
    };
  }
  const info: RunnerInfo = {
    ...advertised,
    group: token.group ?? advertised.group,
    tenant_id: token.tenant_id ?? advertised.tenant_id,
  };
  return sharingRefusal(info, token) ?? info;
}

/**
 * Why a runner saying it is shared may not be (docs/security.md): a tenant's runner serves
 * that tenant alone, and a runner that does not isolate would let one tenant's steps read
 * another's. Undefined when it is not shared or may be.
 */
function sharingRefusal(info: RunnerInfo, token: TokenRecord): HelloRefusal | undefined {
  if (!info.shared) return undefined;
  const reason = "the runner cannot be shared";
  if (info.tenant_id !== null) {
    const why =
      token.tenant_id !== null
        ? `its runner token belongs to tenant "${token.tenant_id}"`
        : `it says tenant "${info.tenant_id}" (RUNYARD_TENANT_ID / ADOS_TENANT_ID)`;
    return {
      code: "RUNNER_SHARED_TENANT",
      message: `runner "${info.id}" asks to be shared, but ${why}: a tenant's runner serves that tenant alone`,
      hint: errorTable.RUNNER_SHARED_TENANT.hint,
      reason,
    };
  }
  if (info.isolation === "none") {
    return {
      code: "RUNNER_CANNOT_ISOLATE",
      message: `runner "${info.id}" asks to be shared but isolates nothing (isolation "none"): its steps could read each other's files and environment`,
      hint: errorTable.RUNNER_CANNOT_ISOLATE.hint,
      reason,
    };
  }
  return undefined;
}
