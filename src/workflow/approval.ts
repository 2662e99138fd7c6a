/**
 * Approval steps: the run waits, holding no runner, until a listed approver answers or the deadline
 * passes. The server's `ApprovalGate` keeps each wait as a store row, so it outlives a restart and an
 * answer given to any replica reaches the engine.
 */
import { errorInfo } from "../core/errors.js";
import type { ErrorInfo, StepStatus } from "../core/events.js";
import type { HostContext } from "./engine.js";
import type { ApprovalInput, ApprovalSpec, Step } from "./model.js";
import { settingExportsError } from "./outside-values.js";
import { finishStep, type HostOutcome } from "./step-run.js";
import { fillVariables } from "./templates.js";

/** What an approval step asks, as the gate stores it. */
export interface ApprovalRequest {
  step: string;
  message: string;
  approvers: string[];
  /** ISO time; no answer by then is a rejection (APPROVAL_TIMEOUT). */
  deadline: string;
  /** Distinct approvers who must approve; 1 when absent. */
  required?: number;
  /** Whether the run's submitter may answer; yes when absent. */
  selfApproval?: boolean;
  /** ISO time; no answer is taken before it. */
  notBefore?: string;
  /** The form the approver fills in. */
  inputs?: ApprovalInput[];
}

export interface ApprovalAnswer {
  decision: "approved" | "rejected" | "timeout";
  /** Who answered; null for a timeout. With several approvals: the one whose approval completed them. */
  by: string | null;
  comment?: string;
  /** Approved: the form's values, defaults filled in. */
  inputs?: Record<string, string>;
  /** Several approvals: who approved, in order. */
  approvedBy?: string[];
}

/** One approver's answer while a step needs several. */
export interface ApprovalVote {
  decision: "approved" | "rejected";
  by: string;
  comment?: string;
  /** Approvals so far, this one included. */
  approvals: number;
}

/** Where a run's approval steps wait for their answers. */
export interface ApprovalGate {
  /** Records the wait once (a restart keeps the first), before `step.started`; gives the deadline. */
  open(request: ApprovalRequest): Promise<{ deadline: string }>;
  /** Resolves with the answer, `timeout` past the deadline, or undefined when `signal` aborts first. */
  answer(
    step: string,
    deadline: string,
    signal: AbortSignal,
    /** Told each approver's answer as it is stored, once per approver. */
    onVote?: (vote: ApprovalVote) => void,
  ): Promise<ApprovalAnswer | undefined>;
}

/**
 * The most characters of a filled-in approval message: `${A}` fifty times over a 128 KiB variable
 * would be megabytes, kept with the run and sent to every approver.
 */
export const maxApprovalMessageLength = 16 * 1024;

/** `${NAME}` in an approval's message, replaced by the variable's value when the step starts. */
export function approvalMessage(template: string, vars: Record<string, string>): string {
  const filled = fillVariables(template, vars);
  if (filled.length <= maxApprovalMessageLength) return filled;
  const note = (left: number) => `\n... (${left} more characters of the message were left out)`;
  const kept = maxApprovalMessageLength - note(filled.length).length;
  return `${filled.slice(0, kept)}${note(filled.length - kept)}`;
}

/** Runs an approval step; resumed while waiting, it waits again to the same deadline. */
export async function awaitApproval(
  step: Step,
  spec: ApprovalSpec,
  host: string,
  ctx: HostContext,
): Promise<HostOutcome> {
  const { prior } = ctx;
  const began = prior?.waiting ? Date.parse(prior.waiting.ts) : Date.now();
  let answer: ApprovalAnswer | undefined = prior?.answer;
  let error: ErrorInfo | undefined;
  if (!answer) {
    const gate = ctx.options.approvals;
    const message = prior?.waiting?.message ?? ctx.masker.mask(approvalMessage(spec.message, ctx.vars));
    const asked = prior?.waiting?.deadline ?? new Date(Date.now() + spec.timeoutSeconds * 1000).toISOString();
    const notBefore = prior?.waiting?.not_before ?? new Date(began + spec.waitSeconds * 1000).toISOString();
    // The gate opens first: a server says the run started there, before its step.started.
    const opened = await gate?.open({
      step: step.name,
      message,
      approvers: spec.approvers,
      deadline: asked,
      required: spec.required,
      selfApproval: spec.selfApproval,
      notBefore,
      inputs: spec.inputs,
    });
    if (!prior) ctx.emit({ type: "step.started", step: step.name, host, attempt: 1 });
    if (!gate || !opened) {
      error = errorInfo(
        "APPROVAL_NEEDS_SERVER",
        "it waits for an approver's answer, and only a server can take one",
      );
    } else {
      const { deadline } = opened;
      if (!prior?.waiting) {
        ctx.emit({
          type: "step.waiting",
          step: step.name,
          host,
          message,
          approvers: spec.approvers,
          deadline,
          ...(spec.required > 1 ? { required: spec.required } : {}),
          ...(spec.waitSeconds > 0 ? { not_before: notBefore } : {}),
          ...(spec.selfApproval ? {} : { self_approval: false as const }),
          ...(spec.inputs.length > 0 ? { inputs: spec.inputs.map(inputView) } : {}),
        });
      }
      const told = new Set(prior?.votes ?? []);
      const onVote = (vote: ApprovalVote): void => {
        if (spec.required <= 1 || told.has(vote.by)) return;
        told.add(vote.by);
        ctx.emit({
          type: "approval.vote",
          step: step.name,
          host,
          decision: vote.decision,
          by: vote.by,
          ...(vote.comment ? { comment: vote.comment } : {}),
          approvals: vote.approvals,
          required: spec.required,
        });
      };
      answer = await gate.answer(step.name, deadline, ctx.signal, onVote);
      if (answer) {
        ctx.emit({
          type: "approval.answered",
          step: step.name,
          host,
          decision: answer.decision,
          by: answer.by,
          ...(answer.comment ? { comment: answer.comment } : {}),
          ...(answer.inputs && Object.keys(answer.inputs).length > 0 ? { inputs: answer.inputs } : {}),
          ...(answer.approvedBy && spec.required > 1 ? { approved_by: answer.approvedBy } : {}),
        });
      }
    }
  }
  error ??= answer && answerError(spec, answer);
  error ??= settingExportsError(
    "EXPORT_NAME_REFUSED",
    step.name,
    Object.keys(answer?.inputs ?? {}),
    "an approver's input",
  );
  const status: StepStatus =
    answer?.decision === "approved" && !error ? "success" : answer || error ? "failed" : "canceled";
  const duration = Math.max(0, Date.now() - began);
  // The form's values are the step's exports, as a command step's are.
  const exports = status === "success" ? { ...(answer?.inputs ?? {}) } : {};
  return finishStep(
    ctx.emit,
    step.name,
    host,
    { status, attempts: 1, duration_ms: duration, ...(error ? { error } : {}) },
    exports,
  );
}

/** An input as `step.waiting` shows it. */
function inputView(input: ApprovalInput) {
  return {
    name: input.name,
    type: input.type,
    ...(input.options ? { options: input.options } : {}),
    ...(input.default !== undefined ? { default: input.default } : {}),
    required: input.required,
    ...(input.description !== undefined ? { description: input.description } : {}),
  };
}

/** The engine prefixes these with the step and host. */
function answerError(spec: ApprovalSpec, answer: ApprovalAnswer): ErrorInfo | undefined {
  const comment = answer.comment ? `: ${answer.comment}` : "";
  switch (answer.decision) {
    case "approved":
      return undefined;
    case "rejected":
      return errorInfo("APPROVAL_REJECTED", `rejected by ${answer.by}${comment}`);
    case "timeout":
      return errorInfo(
        "APPROVAL_TIMEOUT",
        `no approver answered within ${spec.timeoutSeconds} s; a wait that times out rejects`,
      );
  }
}
