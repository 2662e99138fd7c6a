import type { Selectable } from "kysely";
import type { StoreContext } from "./dialect.js";
import { type ApprovalsTable, decodeJson, encodeJson, isoTime } from "./schema.js";

export type ApprovalDecision = "approved" | "rejected" | "timeout";

/** An approval step's wait, and its answer once given. */
export interface ApprovalRecord {
  run_id: string;
  step: string;
  /** What the approvers read (the step's message, its variables filled in, secrets masked). */
  message: string;
  /** Usernames and `role:admin` / `role:member` of the run's tenant. */
  approvers: string[];
  /** No answer by then is a rejection. */
  deadline: string;
  /** Null while the step waits. */
  decision: ApprovalDecision | null;
  /** A username, or `token <id>` for a token without a user; null for a timeout. */
  answered_by: string | null;
  comment: string | null;
  answered_at: string | null;
  created_at: string;
}

export interface NewApproval {
  run_id: string;
  step: string;
  message: string;
  approvers: string[];
  deadline: string;
}

export interface ApprovalAnswerInput {
  decision: ApprovalDecision;
  by: string | null;
  comment?: string | null;
}

function toRecord(row: Selectable<ApprovalsTable>): ApprovalRecord {
  return { ...row, approvers: decodeJson<string[]>(row.approvers) };
}

async function getApproval(ctx: StoreContext, runId: string, step: string) {
  const row = await ctx.db
    .selectFrom("approvals")
    .selectAll()
    .where("run_id", "=", runId)
    .where("step", "=", step)
    .executeTakeFirst();
  return row && toRecord(row);
}

/** Inserts the wait unless the step has one: a resumed engine opens it again and keeps the first. */
async function openApproval(ctx: StoreContext, input: NewApproval): Promise<ApprovalRecord> {
  await ctx.db
    .insertInto("approvals")
    .values({
      run_id: input.run_id,
      step: input.step,
      message: input.message,
      approvers: encodeJson(input.approvers),
      deadline: isoTime(input.deadline),
      decision: null,
      answered_by: null,
      comment: null,
      answered_at: null,
      created_at: isoTime(ctx.now()),
    })
    .onConflict((conflict) => conflict.columns(["run_id", "step"]).doNothing())
    .execute();
  const stored = await getApproval(ctx, input.run_id, input.step);
  if (!stored) throw new Error(`approval of ${input.run_id}/${input.step} vanished as it was stored`);
  return stored;
}

/**
 * One statement per dialect: the answer lands only on a wait not answered yet, so two answers
 * (two approvers, or an approver and the deadline, on any replicas) can never both count.
 */
async function answerApproval(
  ctx: StoreContext,
  runId: string,
  step: string,
  answer: ApprovalAnswerInput,
): Promise<ApprovalRecord | undefined> {
  const row = await ctx.db
    .updateTable("approvals")
    .set({
      decision: answer.decision,
      answered_by: answer.by,
      comment: answer.comment ?? null,
      answered_at: isoTime(ctx.now()),
    })
    .where("run_id", "=", runId)
    .where("step", "=", step)
    .where("decision", "is", null)
    .returningAll()
    .executeTakeFirst();
  return row && toRecord(row);
}

async function listApprovals(ctx: StoreContext, runId: string): Promise<ApprovalRecord[]> {
  const rows = await ctx.db
    .selectFrom("approvals")
    .selectAll()
    .where("run_id", "=", runId)
    .orderBy("created_at")
    .orderBy("step")
    .execute();
  return rows.map(toRecord);
}

/** Approval steps' waits and answers, one per run and step. */
export interface ApprovalsRepo {
  /** Records a wait; a step that has one already keeps it (and its deadline), which is returned. */
  open(input: NewApproval): Promise<ApprovalRecord>;
  get(runId: string, step: string): Promise<ApprovalRecord | undefined>;
  /** Stores the answer if the wait has none yet; undefined when it was answered already (or never opened). */
  answer(runId: string, step: string, answer: ApprovalAnswerInput): Promise<ApprovalRecord | undefined>;
  /** A run's waits, in the order they were opened. */
  listForRun(runId: string): Promise<ApprovalRecord[]>;
}

export function approvalsRepo(ctx: StoreContext): ApprovalsRepo {
  return {
    open: (input) => openApproval(ctx, input),
    get: (runId, step) => getApproval(ctx, runId, step),
    answer: (runId, step, answer) => answerApproval(ctx, runId, step, answer),
    listForRun: (runId) => listApprovals(ctx, runId),
  };
}
