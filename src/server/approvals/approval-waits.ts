import type { Logger } from "../../core/logger.js";
import type { ApprovalRecord, Store } from "../../store/index.js";
import type { ApprovalAnswer, ApprovalGate, ApprovalVote } from "../../workflow/approval.js";

/** How often a waiting approval reads its row even when nobody woke it (a lost fleet message). */
export const approvalRecheckMs = 2000;

function answerOf(row: ApprovalRecord): ApprovalAnswer | undefined {
  if (row.decision === null) return undefined;
  return {
    decision: row.decision,
    by: row.answered_by,
    ...(row.comment ? { comment: row.comment } : {}),
    ...(row.inputs ? { inputs: row.inputs } : {}),
    ...(row.approved_by ? { approvedBy: row.approved_by } : {}),
  };
}

/**
 * The approval steps this replica's engines wait on, holding no runner or job. A wait reads its row when
 * an answer is stored (here, or told over the fleet), every `recheckMs` in case that message was lost,
 * and at its deadline, storing the timeout itself; the row takes one answer, so a timeout and a late
 * approval never both count. On `close` the waits stop and hold no timer; the runs wait on after restart.
 */
export class ApprovalWaits {
  /** One wait per run and step (one engine carries a run); `woken` keeps a wake that came mid-read. */
  private readonly waits = new Map<string, { woken: boolean; wake: (() => void) | undefined }>();
  private closed = false;

  constructor(
    private readonly store: Pick<Store, "approvals">,
    private readonly logger: Logger,
    /** Tells every replica that a run's step was answered (this one hears it too). */
    private readonly tell: (runId: string, step: string) => void,
    private readonly recheckMs = approvalRecheckMs,
  ) {}

  /** The gate a run's engine waits at. */
  gateFor(runId: string): ApprovalGate {
    return {
      open: async (request) => {
        const row = await this.store.approvals.open({
          run_id: runId,
          step: request.step,
          message: request.message,
          approvers: request.approvers,
          deadline: request.deadline,
          required: request.required ?? 1,
          self_approval: request.selfApproval ?? true,
          not_before: request.notBefore ?? null,
          form: request.inputs ?? [],
        });
        return { deadline: row.deadline };
      },
      answer: (step, deadline, signal, onVote) => this.wait(runId, step, deadline, signal, onVote),
    };
  }

  /** An answer was stored for the step (by an API call on this replica): its wait goes on, wherever it is. */
  answered(runId: string, step: string): void {
    this.wake(runId, step);
    this.tell(runId, step);
  }

  /** The step's wait, if it is here, reads its row now. */
  wake(runId: string, step: string): void {
    const state = this.waits.get(key(runId, step));
    if (!state) return;
    state.woken = true;
    state.wake?.();
  }

  /**
   * Each wait ends its pause and never settles, so its engine sees neither an answer nor a cancel (that
   * would end the run), and no read of a closed store every `recheckMs` keeps the process from exiting.
   */
  close(): void {
    this.closed = true;
    for (const state of this.waits.values()) state.wake?.();
    this.waits.clear();
  }

  private async wait(
    runId: string,
    step: string,
    deadline: string,
    signal: AbortSignal,
    onVote?: (vote: ApprovalVote) => void,
  ): Promise<ApprovalAnswer | undefined> {
    const id = key(runId, step);
    const state: { woken: boolean; wake: (() => void) | undefined } = { woken: false, wake: undefined };
    this.waits.set(id, state);
    try {
      for (;;) {
        if (this.closed) return await stopped;
        if (signal.aborted) return undefined;
        state.woken = false;
        if (onVote) await this.tellVotes(runId, step, onVote);
        const answer = await this.read(runId, step, deadline);
        // An answer read as the server stops is read again at the next start.
        if (this.closed) return await stopped;
        if (answer) return answer;
        if (state.woken) continue;
        // Past the deadline still unanswered: the store failed just now; read again after a pause.
        const left = Date.parse(deadline) - Date.now();
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            state.wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, left > 0 ? Math.min(this.recheckMs, left) : this.recheckMs);
          signal.addEventListener("abort", done, { once: true });
          state.wake = done;
          // Canceled while the row was read: an abort event does not come twice.
          if (signal.aborted) done();
        });
      }
    } finally {
      if (this.waits.get(id) === state) this.waits.delete(id);
    }
  }

  /** Tells the engine each approver's answer stored so far (it tells each approver once). */
  private async tellVotes(runId: string, step: string, onVote: (vote: ApprovalVote) => void): Promise<void> {
    try {
      let approvals = 0;
      for (const vote of await this.store.approvals.votes(runId, step)) {
        if (vote.decision === "approved") approvals += 1;
        onVote({
          decision: vote.decision,
          by: vote.voter,
          ...(vote.comment ? { comment: vote.comment } : {}),
          approvals,
        });
      }
    } catch (error) {
      this.logger.warn(
        { err: error, runId, step },
        "cannot read an approval's answers; reading again shortly",
      );
    }
  }

  /** The stored answer; past the deadline, the timeout this wait stores (unless an answer beat it). */
  private async read(runId: string, step: string, deadline: string): Promise<ApprovalAnswer | undefined> {
    try {
      const row = await this.store.approvals.get(runId, step);
      const answer = row && answerOf(row);
      if (answer || Date.now() < Date.parse(deadline)) return answer;
      // A wait without a row (its run was removed) has nobody to answer it.
      if (!row) return { decision: "timeout", by: null };
      const timedOut = await this.store.approvals.answer(runId, step, { decision: "timeout", by: null });
      if (timedOut) return answerOf(timedOut);
      const beaten = await this.store.approvals.get(runId, step);
      return beaten && answerOf(beaten);
    } catch (error) {
      // The store is unreachable for a moment: the wait goes on, and reads again.
      this.logger.warn(
        { err: error, runId, step },
        "cannot read an approval's answer; reading again shortly",
      );
      return undefined;
    }
  }
}

/** What a wait is left with once its server stops: it never settles, and holds nothing open. */
const stopped = new Promise<never>(() => undefined);

function key(runId: string, step: string): string {
  return `${runId}\u0000${step}`;
}
