import type { Selectable } from "kysely";
import type { z } from "zod";
import type { ApprovalFormInput as FormInputSchema } from "../core/events.js";
import { decodeJson, encodeJson, isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { ApprovalsTable, ApprovalVotesTable } from "./schema.js";

export type ApprovalDecision = "approved" | "rejected" | "timeout";

/** An approval step's wait, and its answer once given: its row, the JSON columns read. */
export type ApprovalRecord = Omit<
  Selectable<ApprovalsTable>,
  "approvers" | "self_approval" | "form" | "inputs" | "approved_by"
> & {
  /** Usernames and `role:admin` / `role:member` of the run's tenant. */
  approvers: string[];
  /** False: the run's submitter may not answer. */
  self_approval: boolean;
  /** The inputs the approver fills in (the engine's `ApprovalInput`s). */
  form: ApprovalFormInput[];
  /** Approved: the form's values. */
  inputs: Record<string, string> | null;
  /** Approved: who approved, in order. */
  approved_by: string[] | null;
};

/** One field of an approval's form, as stored. */
export type ApprovalFormInput = z.infer<typeof FormInputSchema>;

export type NewApproval = Pick<ApprovalRecord, "run_id" | "step" | "message" | "approvers" | "deadline"> &
  Partial<Pick<ApprovalRecord, "required" | "self_approval" | "not_before" | "form">>;

export interface ApprovalAnswerInput {
  decision: ApprovalDecision;
  by: string | null;
  comment?: string | null;
  inputs?: Record<string, string> | null;
  approved_by?: string[] | null;
}

/** One approver's answer, as stored. */
export type ApprovalVoteRecord = Omit<Selectable<ApprovalVotesTable>, "inputs"> & {
  inputs: Record<string, string> | null;
};

function toRecord(row: Selectable<ApprovalsTable>): ApprovalRecord {
  return {
    ...row,
    approvers: decodeJson<string[]>(row.approvers),
    required: Number(row.required),
    self_approval: Number(row.self_approval) !== 0,
    form: row.form === null ? [] : decodeJson<ApprovalFormInput[]>(row.form),
    inputs: row.inputs === null ? null : decodeJson<Record<string, string>>(row.inputs),
    approved_by: row.approved_by === null ? null : decodeJson<string[]>(row.approved_by),
  };
}

function toVote(row: Selectable<ApprovalVotesTable>): ApprovalVoteRecord {
  return { ...row, inputs: row.inputs === null ? null : decodeJson<Record<string, string>>(row.inputs) };
}

/** Approval steps' waits and answers, one per run and step. */
export interface ApprovalsRepo {
  /** Records a wait and returns it; a step that has one (a resumed engine opens it again) keeps that one. */
  open(input: NewApproval): Promise<ApprovalRecord>;
  get(runId: string, step: string): Promise<ApprovalRecord | undefined>;
  /**
   * Stores the answer if the wait has none yet, in one statement: two answers (two approvers, or an
   * approver and the deadline, on any replicas) never both count. Undefined when it was answered
   * already (or never opened).
   */
  answer(runId: string, step: string, answer: ApprovalAnswerInput): Promise<ApprovalRecord | undefined>;
  /** A run's waits, in the order they were opened. */
  listForRun(runId: string): Promise<ApprovalRecord[]>;
  /** Stores an approver's answer; undefined when they answered the step already (the key decides). */
  vote(vote: Omit<ApprovalVoteRecord, "answered_at">): Promise<ApprovalVoteRecord | undefined>;
  /** A step's approvers' answers, in the order they came. */
  votes(runId: string, step: string): Promise<ApprovalVoteRecord[]>;
}

export function approvalsRepo(ctx: StoreContext): ApprovalsRepo {
  const repo: ApprovalsRepo = {
    async open(input) {
      await ctx.db
        .insertInto("approvals")
        .values({
          run_id: input.run_id,
          step: input.step,
          message: input.message,
          approvers: encodeJson(input.approvers),
          deadline: isoTime(input.deadline),
          created_at: isoTime(ctx.now()),
          required: input.required ?? 1,
          self_approval: input.self_approval === false ? 0 : 1,
          not_before: input.not_before ? isoTime(input.not_before) : null,
          form: input.form && input.form.length > 0 ? encodeJson(input.form) : null,
        })
        .onConflict((conflict) => conflict.columns(["run_id", "step"]).doNothing())
        .execute();
      const stored = await repo.get(input.run_id, input.step);
      if (!stored) throw new Error(`approval of ${input.run_id}/${input.step} vanished as it was stored`);
      return stored;
    },
    async get(runId, step) {
      const row = await ctx.db
        .selectFrom("approvals")
        .selectAll()
        .where("run_id", "=", runId)
        .where("step", "=", step)
        .executeTakeFirst();
      return row && toRecord(row);
    },
    async answer(runId, step, answer) {
      const row = await ctx.db
        .updateTable("approvals")
        .set({
          decision: answer.decision,
          answered_by: answer.by,
          comment: answer.comment ?? null,
          answered_at: isoTime(ctx.now()),
          inputs: answer.inputs ? encodeJson(answer.inputs) : null,
          approved_by: answer.approved_by ? encodeJson(answer.approved_by) : null,
        })
        .where("run_id", "=", runId)
        .where("step", "=", step)
        .where("decision", "is", null)
        .returningAll()
        .executeTakeFirst();
      return row && toRecord(row);
    },
    async listForRun(runId) {
      const rows = await ctx.db
        .selectFrom("approvals")
        .selectAll()
        .where("run_id", "=", runId)
        .orderBy("created_at")
        .orderBy("step")
        .execute();
      return rows.map(toRecord);
    },
    async vote(vote) {
      const row = await ctx.db
        .insertInto("approval_votes")
        .values({
          run_id: vote.run_id,
          step: vote.step,
          voter: vote.voter,
          decision: vote.decision,
          inputs: vote.inputs ? encodeJson(vote.inputs) : null,
          comment: vote.comment,
          answered_at: isoTime(ctx.now()),
        })
        .onConflict((conflict) => conflict.columns(["run_id", "step", "voter"]).doNothing())
        .returningAll()
        .executeTakeFirst();
      return row && toVote(row);
    },
    async votes(runId, step) {
      const rows = await ctx.db
        .selectFrom("approval_votes")
        .selectAll()
        .where("run_id", "=", runId)
        .where("step", "=", step)
        .orderBy("answered_at")
        .orderBy("voter")
        .execute();
      return rows.map(toVote);
    },
  };
  return repo;
}
