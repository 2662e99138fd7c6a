import type { components } from "../client/api-types.js";
import { printable } from "../core/terminal-text.js";
import type { CliContext } from "./context.js";
import { apiClient } from "./runs.js";

/** An approval step of a run, as `GET /api/runs/{id}` says (`approvals`). */
export type RunApproval = NonNullable<components["schemas"]["Run"]["approvals"]>[number];

/**
 * Why a running run does not go on: one line per approval step that waits, e.g. `running: waiting
 * for approval of step "deploy" by alice, role:admin until 2026-03-01T11:00:00.000Z: Ship 1.2?`.
 */
export function approvalLines(approvals: readonly RunApproval[]): string[] {
  return approvals
    .filter((approval) => approval.status === "waiting")
    .map(
      (approval) =>
        `running: waiting for approval of step "${printable(approval.step)}" by ${approval.approvers.map(printable).join(", ")} until ${approval.deadline}: ${printable(approval.message)}${approval.may_answer ? " (you may answer: runyard runs approve|reject)" : ""}`,
    );
}

/** `runyard runs approve RUN STEP` / `reject`: answers a waiting approval step. */
export async function answerApproval(
  runId: string,
  step: string,
  verb: "approve" | "reject",
  flags: { comment?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const answer = await apiClient(ctx).submit<{ decision: string; answered_by: string }>(
    "POST",
    `/api/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step)}/${verb}`,
    flags.comment !== undefined ? { comment: flags.comment } : {},
  );
  if (flags.json) ctx.stdout.write(`${JSON.stringify(answer)}\n`);
  else
    ctx.stdout.write(`run ${runId}: step "${printable(step)}" ${answer.decision} by ${answer.answered_by}\n`);
  return 0;
}
