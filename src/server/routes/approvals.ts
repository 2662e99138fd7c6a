import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { isFinalStatus } from "../../core/events.js";
import type { ApprovalRecord, RunRecord } from "../../store/index.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { answeredBy, approverEntry, approversText } from "../approvals/approvers.js";
import { audit } from "../audit.js";
import { callerOf } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedErrorResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { WorkflowRunSpec } from "../runs/workflow-runs.js";
import { visibleRun } from "./visible-run.js";

/** A comment is a sentence or two for the audit log and the run's events, never a document. */
const maxCommentLength = 2000;

const StepParams = z.object({
  id: z.string().min(1).describe("the run id"),
  step: z.string().min(1).describe("the approval step's name"),
});

const AnswerBody = z
  .strictObject({
    comment: z
      .string()
      .max(maxCommentLength, `comment is longer than ${maxCommentLength} characters`)
      .optional()
      .describe("why: kept with the answer, in the run's events and the audit log"),
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
});

const AnswerView = z.object({
  run_id: z.string(),
  step: z.string(),
  decision: z.enum(["approved", "rejected"]),
  answered_by: z.string(),
  comment: z.string().nullable(),
  answered_at: z.string(),
});

/** A run's approval steps that have started waiting, answered or not, for `GET /api/runs/:id`. */
export async function approvalViews(
  deps: Pick<ServerDeps, "store">,
  request: FastifyRequest,
  run: RunRecord,
): Promise<z.output<typeof ApprovalView>[]> {
  if (run.kind !== "workflow") return [];
  const rows = await deps.store.approvals.listForRun(run.id);
  return rows.map((row) => ({
    step: row.step,
    message: row.message,
    approvers: row.approvers,
    deadline: row.deadline,
    status: row.decision ?? "waiting",
    answered_by: row.answered_by,
    comment: row.comment,
    answered_at: row.answered_at,
    may_answer:
      row.decision === null &&
      !isFinalStatus(run.status) &&
      approverEntry(request.principal, run.tenant_id, row.approvers) !== undefined,
  }));
}

/** Whether the run's workflow has an approval step of that name (it may not be waiting yet). */
function hasApprovalStep(run: RunRecord, step: string): boolean {
  const spec = WorkflowRunSpec.safeParse(run.spec);
  if (!spec.success) return false;
  const { workflow } = parseWorkflow(spec.data.workflow, spec.data.file ?? "workflow.yaml");
  return workflow?.steps.some((s) => s.name === step && s.action === "approval") ?? false;
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
    await audit(deps, request, {
      action: decision === "approved" ? "run.approve" : "run.reject",
      target: run.id,
      outcome: "denied",
      tenant_id: run.tenant_id,
      details: { step },
    });
    throw new RunyardError("FORBIDDEN", `you are not an approver of step "${step}" of run ${run.id}`, {
      hint: `It may be answered by ${approversText(row.approvers, run.tenant_id)}; ask one of them.`,
    });
  }
  return row;
}

function ended(run: RunRecord, step: string): RunyardError {
  return new RunyardError(
    "CONFLICT",
    `run ${run.id} has ended (${run.status}); step "${step}" takes no answer`,
    {
      hint: "Only a running run's waiting approval step takes an answer; re-run the workflow to ask again.",
    },
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
          } The answer, who gave it and the comment are the run's \`approval.answered\` event and an audit entry.${idempotentRouteNote}`,
          tags: ["runs"],
          headers: IdempotencyKeyHeaders,
          params: StepParams,
          body: AnswerBody,
          response: {
            200: {
              description: "the answer, stored",
              content: { "application/json": { schema: AnswerView } },
            },
            ...protectedErrorResponses(400, 403, 404, 409),
          },
        },
      },
      async (request) => {
        const { id, step } = request.params;
        const comment = request.body?.comment?.trim() || null;
        const run = await visibleRun(deps, request, id);
        await answerableWait(deps, request, run, step, decision);
        const by = answeredBy(callerOf(request));
        const answered = await deps.store.approvals.answer(run.id, step, { decision, by, comment });
        if (!answered) {
          const now = await deps.store.approvals.get(run.id, step);
          throw new RunyardError(
            "CONFLICT",
            `step "${step}" of run ${run.id} was answered just now (${now?.decision ?? "unknown"} by ${now?.answered_by ?? "the deadline"})`,
            { hint: "An approval step is answered once; to ask again, re-run the workflow." },
          );
        }
        deps.approvals.answered(run.id, step);
        await audit(deps, request, {
          action: decision === "approved" ? "run.approve" : "run.reject",
          target: run.id,
          tenant_id: run.tenant_id,
          details: { step, ...(comment ? { comment } : {}) },
        });
        return {
          run_id: run.id,
          step,
          decision,
          answered_by: by,
          comment,
          answered_at: answered.answered_at ?? new Date().toISOString(),
        };
      },
    );
  }
}
