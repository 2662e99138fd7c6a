import type { components } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { printable } from "../core/terminal-text.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { printJson } from "./table.js";

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
        `running: waiting for approval of step "${printable(approval.step)}" by ${approval.approvers.map(printable).join(", ")}${approvalRules(approval)} until ${approval.deadline}: ${printable(approval.message)}${approval.may_answer ? " (you may answer: runyard runs approve|reject)" : ""}`,
    );
}

/** `--input NAME=value` flags as the API's `inputs`; a flag without `=` is a usage error. */
export function inputsOf(flags: readonly string[]): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const flag of flags) {
    const at = flag.indexOf("=");
    if (at <= 0) {
      throw new RunyardError("USAGE", `--input ${JSON.stringify(flag)} is not NAME=value`, {
        hint: "Write --input NAME=value, once per input, e.g. --input REGION=eu",
      });
    }
    const name = flag.slice(0, at);
    if (name in inputs) {
      throw new RunyardError("USAGE", `--input ${name} is given twice`, { hint: "Give each input once." });
    }
    inputs[name] = flag.slice(at + 1);
  }
  return inputs;
}

/** ` (1 of 2 approvals: bob; not the submitter; from T; inputs REGION=eu|us)`: what else it asks. */
function approvalRules(approval: RunApproval): string {
  const parts: string[] = [];
  const approved = approval.approvals.filter((vote) => vote.decision === "approved").map((vote) => vote.by);
  if (approval.required > 1) {
    parts.push(
      `${approved.length} of ${approval.required} approvals${approved.length > 0 ? `: ${approved.map(printable).join(", ")}` : ""}`,
    );
  }
  if (!approval.self_approval) parts.push("not the submitter");
  if (approval.not_before && Date.parse(approval.not_before) > Date.now())
    parts.push(`from ${approval.not_before}`);
  if (approval.inputs.length > 0) {
    const values = approval.values;
    parts.push(
      values
        ? `inputs ${Object.entries(values)
            .map(([name, value]) => `${printable(name)}=${printable(value)}`)
            .join(" ")}`
        : `inputs ${approval.inputs.map((input) => `--input ${printable(input.name)}=${input.type === "choice" ? (input.options ?? []).map(printable).join("|") : input.type.toUpperCase()}`).join(" ")}`,
    );
  }
  return parts.length > 0 ? ` (${parts.join("; ")})` : "";
}

/** `runyard runs approve RUN STEP` / `reject`: answers a waiting approval step. */
export async function answerApproval(
  runId: string,
  step: string,
  verb: "approve" | "reject",
  flags: { comment?: string; json?: boolean; input?: string[] },
  ctx: CliContext,
): Promise<number> {
  const inputs = inputsOf(flags.input ?? []);
  if (verb === "reject" && Object.keys(inputs).length > 0) {
    throw new RunyardError("USAGE", "--input fills in an approval's form, and a rejection fills in nothing", {
      hint: "Drop --input, or approve instead.",
    });
  }
  const body = {
    ...(flags.comment !== undefined ? { comment: flags.comment } : {}),
    ...(Object.keys(inputs).length > 0 ? { inputs } : {}),
  };
  const answer = await apiClient(ctx).submit<{
    decision: string;
    answered_by: string;
    approvals: number;
    required: number;
    status: string;
    inputs: Record<string, string> | null;
  }>("POST", `/api/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step)}/${verb}`, body);
  if (flags.json) return printJson(ctx.stdout, answer);
  const count = answer.required > 1 ? ` (${answer.approvals} of ${answer.required} approvals)` : "";
  ctx.stdout.write(
    `run ${runId}: step "${printable(step)}" ${answer.decision} by ${answer.answered_by}${count}\n`,
  );
  if (answer.status === "waiting") {
    const left = answer.required - answer.approvals;
    ctx.stdout.write(`  it waits for ${left} more approval${left === 1 ? "" : "s"} from other approvers\n`);
  }
  for (const [name, value] of Object.entries(answer.inputs ?? {})) {
    ctx.stdout.write(`  ${printable(name)}=${printable(value)}\n`);
  }
  return 0;
}
