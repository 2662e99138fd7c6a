import { useState } from "react";
import { type ApiError, answer, api, asApiError, asSubmit, type Schema } from "../../api.js";
import { formatDate } from "../../dates.js";

type Run = Schema<"Run">;
type Approval = NonNullable<Run["approvals"]>[number];

const answered: Record<Exclude<Approval["status"], "waiting">, string> = {
  approved: "approved",
  rejected: "rejected",
  timeout: "timed out",
};

/**
 * A run's approval steps: a waiting one shows its message, who may answer and until when, and,
 * to a listed approver, Approve / Reject with a comment; answered ones say by whom and why.
 */
export function RunApprovals({ run, onAnswered }: { run: Run; onAnswered: () => void }) {
  const approvals = run.approvals ?? [];
  if (approvals.length === 0) return null;
  return (
    <div className="run-approvals">
      {approvals.map((approval) =>
        approval.status === "waiting" ? (
          <WaitingApproval key={approval.step} runId={run.id} approval={approval} onAnswered={onAnswered} />
        ) : (
          <p key={approval.step} className="approval-answered">
            Approval <strong>{approval.step}</strong> {answered[approval.status]}
            {approval.answered_by ? ` by ${approval.answered_by}` : ""}
            {approval.comment ? `: “${approval.comment}”` : ""}
          </p>
        ),
      )}
    </div>
  );
}

function WaitingApproval({
  runId,
  approval,
  onAnswered,
}: {
  runId: string;
  approval: Approval;
  onAnswered: () => void;
}) {
  const [comment, setComment] = useState("");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const params = { path: { id: runId, step: approval.step } };
  const body = comment.trim() === "" ? {} : { comment: comment.trim() };

  const send = async (verb: "approve" | "reject") => {
    setSending(true);
    setError(null);
    try {
      if (verb === "approve")
        await answer(api.POST("/api/runs/{id}/steps/{step}/approve", { params, body, ...asSubmit }));
      else await answer(api.POST("/api/runs/{id}/steps/{step}/reject", { params, body, ...asSubmit }));
      onAnswered();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setSending(false);
    }
  };

  const who = approval.approvers.join(", ");
  return (
    <section className="approval" aria-label={`Approval ${approval.step}`}>
      <h2>Waiting for approval: {approval.step}</h2>
      <p className="approval-message">{approval.message}</p>
      <p className="hint">
        {approval.may_answer ? "You may answer" : `Only ${who} may answer`}; without an answer it is rejected
        at {formatDate(approval.deadline)}.
      </p>
      {approval.may_answer && (
        <form
          className="approval-answer"
          onSubmit={(event) => {
            event.preventDefault();
            void send("approve");
          }}
        >
          <label>
            Comment (optional)
            <textarea
              value={comment}
              maxLength={2000}
              rows={2}
              onChange={(e) => setComment(e.target.value)}
            />
          </label>
          <div className="run-actions">
            <button type="submit" className="primary" disabled={sending}>
              Approve
            </button>
            <button type="button" disabled={sending} onClick={() => void send("reject")}>
              Reject
            </button>
          </div>
        </form>
      )}
      {error && (
        <p role="alert" className="error">
          {error.message}
          {error.hint ? ` ${error.hint}` : ""}
        </p>
      )}
    </section>
  );
}
