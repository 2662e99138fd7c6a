import { RunyardError } from "../../core/errors.js";
import type { ApprovalRecord, ApprovalVoteRecord, RunRecord, Store } from "../../store/index.js";
import { fillApprovalInputs, type GivenValue } from "../../workflow/approval-inputs.js";
import type { Principal } from "../auth.js";

/**
 * An approval's rules beyond "a listed approver": nothing before its `wait`, nothing from the submitter
 * under `self_approval: false`, one per approver, form values checked; each refusal says what to do.
 */

/**
 * Whether the caller submitted the run, themselves or through a token of theirs, revoked too (revoking
 * it must not make the submitter someone else: the run keeps `created_by_user`).
 */
export async function isSubmitter(
  store: Pick<Store, "tokens" | "users" | "audit">,
  principal: Principal,
  run: RunRecord,
): Promise<boolean> {
  const submitter = run.created_by;
  if (submitter === null) return false;
  if (submitter === principal.user_id || submitter === principal.token_id) return true;
  if (principal.user_id === null) return false;
  if (run.created_by_user !== null) return run.created_by_user === principal.user_id;
  // A token of no user, or a run stored before runs kept their user: whose the token is or was.
  const token = await store.tokens.owner(submitter);
  if (token) return token.user_id === principal.user_id;
  if (await store.users.get(submitter)) return false;
  // The token is gone, whose unkept (user removed, or an older revocation): the audit entry says whose.
  // With none (pruned), nobody can be told apart from the submitter.
  const { events } = await store.audit.list({ action: "token.revoke", target: submitter, limit: 1 });
  const owner = events[0]?.details.user_id;
  return owner === undefined || owner === principal.user_id;
}

/** Refuses an answer given before the step's `wait` has passed. */
export function checkNotBefore(row: ApprovalRecord, run: RunRecord, now = Date.now()): void {
  if (row.not_before === null || now >= Date.parse(row.not_before)) return;
  const left = Math.ceil((Date.parse(row.not_before) - now) / 1000);
  throw new RunyardError(
    "CONFLICT",
    `step "${row.step}" of run ${run.id} takes answers from ${row.not_before} (in ${left} s)`,
    { hint: "The step's wait: gives everyone time to look first; answer once it has passed." },
  );
}

export function selfApprovalRefused(row: ApprovalRecord, run: RunRecord): RunyardError {
  return new RunyardError(
    "FORBIDDEN",
    `you submitted run ${run.id}; step "${row.step}" takes no answer from its submitter (self_approval: false)`,
    { hint: "Ask another listed approver to answer it." },
  );
}

export function answeredTwice(
  row: ApprovalRecord,
  run: RunRecord,
  mine: ApprovalVoteRecord | undefined,
  approvals: number,
): RunyardError {
  const left = Math.max(0, row.required - approvals);
  const when = mine ? ` (${mine.decision} at ${mine.answered_at})` : "";
  return new RunyardError("CONFLICT", `you answered step "${row.step}" of run ${run.id} already${when}`, {
    hint:
      left > 0
        ? `Each approver counts once: it needs ${left} more approval${left === 1 ? "" : "s"} from other approvers.`
        : "Each approver counts once.",
  });
}

/**
 * The form values this approval stands for: the first approval's (later approvers may repeat, not
 * change them), else the caller's, checked and with defaults filled in.
 */
export function approvalValues(
  row: ApprovalRecord,
  run: RunRecord,
  votes: readonly ApprovalVoteRecord[],
  given: Readonly<Record<string, GivenValue>> | undefined,
): Record<string, string> {
  const first = votes.find((vote) => vote.decision === "approved" && vote.inputs !== null);
  const { values, problems } = fillApprovalInputs(row.form, given ?? {});
  if (problems.length > 0 && !(first && Object.keys(given ?? {}).length === 0)) {
    throw new RunyardError("INVALID_INPUT", `step "${row.step}" of run ${run.id}: ${problems.join("; ")}`, {
      hint: formHint(row),
    });
  }
  if (!first?.inputs) return values;
  if (Object.keys(given ?? {}).length === 0) return first.inputs;
  const differs = Object.keys(given ?? {}).filter((name) => values[name] !== first.inputs?.[name]);
  if (differs.length > 0) {
    throw new RunyardError(
      "CONFLICT",
      `step "${row.step}" of run ${run.id} was filled in by ${first.voter}: ${differs.map((name) => `${name}=${first.inputs?.[name]}`).join(", ")}; you gave other values`,
      {
        hint: "Later approvers approve the values the first one gave: approve without inputs, or reject and ask for a new run.",
      },
    );
  }
  return first.inputs;
}

/** `--input REGION=eu|us --input COUNT=NUMBER`: what the form takes. */
export function formHint(row: ApprovalRecord): string {
  if (row.form.length === 0) return "This approval takes no inputs: approve without any.";
  const fields = row.form.map((input) => {
    const kind = input.type === "choice" ? (input.options ?? []).join("|") : input.type;
    const optional = !input.required || input.default !== undefined;
    return `${optional ? "[" : ""}${input.name}=${kind}${optional ? "]" : ""}`;
  });
  return `Give the inputs as --input NAME=VALUE (API: "inputs": {...}): ${fields.join(" ")}.`;
}
