import { memberContainerRefusal } from "../core/container-policy.js";
import { RunyardError } from "../core/errors.js";
import type { Workflow } from "./model.js";

/**
 * Why a member may not submit this workflow: a container host (`executor: docker`) whose
 * network or image a member's run may not have (core/container-policy.ts), as INVALID_INPUT at
 * the line and column of the key. A runner checks each container again before creating it.
 * Undefined: every container host may run.
 */
export function memberContainersRefusal(workflow: Workflow): RunyardError | undefined {
  for (const [name, host] of Object.entries(workflow.hosts)) {
    if (host.kind === "direct" || !host.container) continue;
    const refusal = memberContainerRefusal(name, host.container);
    if (!refusal) continue;
    const pos = workflow.containerPos?.[name]?.[refusal.key];
    const where = pos ? `${workflow.file ?? "workflow.yaml"}:${pos.line}:${pos.col}: ` : "";
    return new RunyardError("INVALID_INPUT", `${where}${refusal.message}`, { hint: refusal.hint });
  }
  return undefined;
}
