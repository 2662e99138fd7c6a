import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { ApprovalFormInput, isFinalStatus } from "../../core/events.js";
import type { ApprovalRecord, RunRecord } from "../../store/index.js";
import { maxApprovalInputLength } from "../../workflow/approval-inputs.js";
import { maxApprovalInputs } from "../../workflow/parse-approval-inputs.js";
import {
  answeredTwice,
  approvalValues,
  checkNotBefore,
  isSubmitter,
  selfApprovalRefused,
} from "../approvals/approval-rules.js";
import { answeredBy, approverEntry, approversText } from "../approvals/approvers.js";
import { audit } from "../audit.js";
import { callerOf } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { storedWorkflow } from "./run-inputs.js";
import { visibleRun } from "./visible-run.js";

/** A comment is a sentence or two for the audit log and the run's events, never a document. */
const maxCommentLength = 2000;

const StepParams = z.object({
  id: z.string().min(1).describe("the run id"),
  step: z.string().min(1).describe("the approval step's name"),
});

const CommentField = z
  .string()
  .max(maxCommentLength, `comment is longer than ${maxCommentLength} characters`)
  .optional()
  .describe("why: kept with the answer, in the run's events and the audit log");

const RejectBody = z.strictObject({ comment: CommentField }).optional();

const ApproveBody = z
  .strictObject({
    comment: CommentField,
    inputs: z
      .record(
        z.string().max(128, "an input's name is at most 128 characters"),
        z.union([z.string().max(maxApprovalInputLength), z.number(), z.boolean()]),
      )
      .refine((inputs) => Object.keys(inputs).length <= maxApprovalInputs, {
        message: `at most ${maxApprovalInputs} inputs`,
      })
      .optional()
      .describe(
        "the step's form (its `inputs:`), by name: checked against each input's type; the values become the step's exports. Later approvers of a step that needs several approve the first one's values.",
      ),
  })
  .optional();

/** An approval step of a run, as the API shows it. */
export const ApprovalView = z.object({
  step: z.string(),
  message: z.string().describe("what the approvers decide, its variables filled in"),
  approvers: z.array(z.string()).describe("usernames and role:admin / role:member of the run's tenant"),
  deadline: z.string().describe("no answer by then rejects the step (APPROVAL_TIMEOUT)"),
  status: z.enum(["waiting", "approved", "rejected", "timeout"]),
  answered_by: z
    .string()
    .nullable()
    .describe("a username, or `token <id>`; null while waiting and for a timeout"),
  comment: z.string().nullable(),
  answered_at: z.string().nullable(),
  may_answer: z.boolean().describe("whether the caller may approve or reject it now"),
  required: z.number().int().describe("distinct approvers who must approve"),
  approvals: z
    .array(
      z.object({
        by: z.string(),
        decision: z.enum(["approved", "rejected"]),
        comment: z.string().nullable(),
        at: z.string(),
      }),
    )
    .describe("each approver's answer so far, in order"),
  self_approval: z.boolean().describe("false: the run's submitter may not answer"),
  not_before: z.string().nullable().describe("no answer is taken before then (the step's `wait:`)"),
  inputs: z
    .array(ApprovalFormInput)
    .describe("the form an approver fills in; the values become the step's exports"),
  values: z
    .record(z.string(), z.string())
    .nullable()
    .describe(
      "the form as filled in: by the first approver while it waits, the approved values once approved",
    ),
});

const AnswerView = z.object({
  run_id: z.string(),
  step: z.string(),
  decision: z.enum(["approved", "rejected"]),
  answered_by: z.string(),
  comment: z.string().nullable(),
  answered_at: z.string(),
  approvals: z.number().int().describe("approvals of the step so far, this one included"),
  required: z.number().int().describe("distinct approvers who must approve"),
  status: z
    .enum(["waiting", "approved", "rejected"])
    .describe("the step's: `waiting` while it needs more approvals"),
  inputs: z.record(z.string(), z.string()).nullable().describe("the form's values this answer approved"),
});

/** A run's approval steps that have started waiting, answered or not, for `GET /api/runs/:id`. */
export async function approvalViews(
  deps: Pick<ServerDeps, "store">,
  request: FastifyRequest,
  run: RunRecord,
): Promise<z.output<typeof ApprovalView>[]> {
  if (run.kind !== "workflow") return [];
  const rows = await deps.store.approvals.listForRun(run.id);
  const principal = request.principal;
  const submitter = principal ? await isSubmitter(deps.store, principal, run) : false;
  const me = principal ? answeredBy(principal) : undefined;
  return Promise.all(
    rows.map(async (row) => {
      const votes = await deps.store.approvals.votes(run.id, row.step);
      const firstValues = votes.find((vote) => vote.decision === "approved" && vote.inputs !== null)?.inputs;
      return {
        ...row,
        status: row.decision ?? "waiting",
        may_answer:
          row.decision === null &&
          !isFinalStatus(run.status) &&
          approverEntry(principal, run.tenant_id, row.approvers) !== undefined &&
          !(submitter && !row.self_approval) &&
          !votes.some((vote) => vote.voter === me),
        approvals: votes.map((vote) => ({
          by: vote.voter,
          decision: vote.decision,
          comment: vote.comment,
          at: vote.answered_at,
        })),
        inputs: row.form,
        values: row.inputs ?? firstValues ?? null,
      };
    }),
  );
}

/** Whether the run's workflow has an approval step of that name (it may not be waiting yet). */
function hasApprovalStep(run: RunRecord, step: string): boolean {
  return storedWorkflow(run)?.workflow.steps.some((s) => s.name === step && s.action === "approval") ?? false;
}

/** The wait the caller may answer now, or the error that says why not. */
async function answerableWait(
  deps: ServerDeps,
  request: FastifyRequest,
  run: RunRecord,
  step: string,
  decision: "approved" | "rejected",
): Promise<ApprovalRecord> {
  const row = await deps.store.approvals.get(run.id, step);
  if (!row) {
    if (!hasApprovalStep(run, step)) {
      throw new RunyardError("NOT_FOUND", `run ${run.id} has no approval step "${step}"`, {
        hint: `\`runyard runs show ${run.id}\` lists its steps; only steps with action: approval take an answer.`,
      });
    }
    if (isFinalStatus(run.status)) throw ended(run, step);
    throw new RunyardError("CONFLICT", `step "${step}" of run ${run.id} is not waiting for approval yet`, {
      hint: "It waits once the steps before it have ended; answer it then (`runyard runs show` says when).",
    });
  }
  if (row.decision !== null) {
    const how = row.decision === "timeout" ? "timed out" : `was ${row.decision} by ${row.answered_by}`;
    throw new RunyardError("CONFLICT", `step "${step}" of run ${run.id} ${how} at ${row.answered_at}`, {
      hint: "An approval step is answered once; to ask again, re-run the workflow.",
    });
  }
  if (isFinalStatus(run.status)) throw ended(run, step);
  if (approverEntry(request.principal, run.tenant_id, row.approvers) === undefined) {
    await auditAnswer(deps, request, run, decision, { step }, "denied");
    throw new RunyardError("FORBIDDEN", `you are not an approver of step "${step}" of run ${run.id}`, {
      hint: `It may be answered by ${approversText(row.approvers, run.tenant_id)}; ask one of them.`,
    });
  }
  return row;
}

/** The audit entry of an answer to one of `run`'s approval steps, stored or refused. */
function auditAnswer(
  deps: ServerDeps,
  request: FastifyRequest,
  run: RunRecord,
  decision: "approved" | "rejected",
  details: Record<string, unknown>,
  outcome?: "denied",
): Promise<void> {
  return audit(deps, request, {
    action: decision === "approved" ? "run.approve" : "run.reject",
    target: run.id,
    ...(outcome ? { outcome } : {}),
    tenant_id: run.tenant_id,
    details,
  });
}

function ended(run: RunRecord, step: string): RunyardError {
  return new RunyardError(
    "CONFLICT",
    `run ${run.id} has ended (${run.status}); step "${step}" takes no answer`,
    { hint: "Only a running run's waiting approval step takes an answer; re-run the workflow to ask again." },
  );
}

/**
 * Approval gates: `POST /api/runs/:id/steps/:step/approve` and `.../reject`. The answer is stored
 * in the step's wait (its row), and the engine carrying the run, on this replica or another,
 * is told to read it; it emits `approval.answered` and goes on (or fails the step).
 */
export function approvalRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  for (const [verb, decision] of [
    ["approve", "approved"],
    ["reject", "rejected"],
  ] as const) {
    api.post(
      `/api/runs/:id/steps/:step/${verb}`,
      {
        config: idempotentRoute,
        schema: {
          operationId: `${verb}Step`,
          summary: verb === "approve" ? "Approve a waiting approval step" : "Reject a waiting approval step",
          description: `Only a listed approver of the run's tenant may answer (403 for others; 404 for another tenant's run); a step answered already, timed out or of an ended run is 409. ${
            verb === "approve"
              ? "The step ends `success` and the run goes on."
              : "The step fails with APPROVAL_REJECTED, and so does the run unless the step has `continue_on_error`."
          } A step with \`required: N\` needs N approvals from distinct approvers (each an \`approval.vote\` event; an approver answering twice is 409); \`self_approval: false\` refuses the run's submitter (403); before the step's \`wait:\` has passed an answer is 409. ${verb === "approve" ? "`inputs` fills the step's form (400 for a value of the wrong type, an unknown or a missing required input); the values become the step's exports. " : ""}The answer, who gave it and the comment are the run's \`approval.answered\` event and an audit entry.${idempotentRouteNote}`,
          tags: ["runs"],
          headers: IdempotencyKeyHeaders,
          params: StepParams,
          body: verb === "approve" ? ApproveBody : RejectBody,
          response: protectedResponses(200, "the answer, stored", AnswerView, 400, 403, 404, 409),
        },
      },
      async (request) => {
        const { id, step } = request.params;
        const comment = request.body?.comment?.trim() || null;
        // The route's schema checked the body already; this gives it its approve-only type.
        const given = decision === "approved" ? ApproveBody.parse(request.body)?.inputs : undefined;
        const run = await visibleRun(deps, request, id);
        const row = await answerableWait(deps, request, run, step, decision);
        const principal = callerOf(request);
        if (!row.self_approval && (await isSubmitter(deps.store, principal, run))) {
          await auditAnswer(deps, request, run, decision, { step, reason: "self_approval" }, "denied");
          throw selfApprovalRefused(row, run);
        }
        checkNotBefore(row, run);
        const by = answeredBy(principal);
        const before = await deps.store.approvals.votes(run.id, step);
        const countOf = (votes: readonly { decision: string }[]) =>
          votes.filter((vote) => vote.decision === "approved").length;
        const mine = before.find((vote) => vote.voter === by);
        if (mine) throw answeredTwice(row, run, mine, countOf(before));
        const values = decision === "approved" ? approvalValues(row, run, before, given) : null;
        const voted = await deps.store.approvals.vote({
          run_id: run.id,
          step,
          voter: by,
          decision,
          inputs: values && Object.keys(values).length > 0 ? values : null,
          comment,
        });
        const votes = await deps.store.approvals.votes(run.id, step);
        if (!voted)
          throw answeredTwice(
            row,
            run,
            votes.find((vote) => vote.voter === by),
            countOf(votes),
          );
        const approvals = countOf(votes);
        // The step's own answer: the first rejection, or the approval that makes `required`.
        let status: "waiting" | "approved" | "rejected" = "waiting";
        let stored = voted.inputs;
        if (decision === "rejected" || approvals >= row.required) {
          const approvers = votes.filter((vote) => vote.decision === "approved");
          const agreed = approvers.find((vote) => vote.inputs !== null)?.inputs ?? values ?? {};
          const answered = await deps.store.approvals.answer(run.id, step, {
            decision,
            by,
            comment,
            ...(decision === "approved"
              ? { inputs: agreed, approved_by: approvers.map((vote) => vote.voter) }
              : {}),
          });
          if (!answered) {
            const now = await deps.store.approvals.get(run.id, step);
            throw new RunyardError(
              "CONFLICT",
              `step "${step}" of run ${run.id} was answered just now (${now?.decision ?? "unknown"} by ${now?.answered_by ?? "the deadline"})`,
              { hint: "An approval step is answered once; to ask again, re-run the workflow." },
            );
          }
          status = decision;
          stored = answered.inputs;
        }
        deps.approvals.answered(run.id, step);
        await auditAnswer(deps, request, run, decision, {
          step,
          ...(comment ? { comment } : {}),
          ...(stored && Object.keys(stored).length > 0 ? { inputs: stored } : {}),
          ...(row.required > 1 ? { approvals, required: row.required } : {}),
        });
        return {
          run_id: run.id,
          step,
          decision,
          answered_by: by,
          comment,
          answered_at: voted.answered_at,
          approvals,
          required: row.required,
          status,
          inputs: stored,
        };
      },
    );
  }
}
