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
          <div key={approval.step} className="approval-answered">
            <p>
              Approval <strong>{approval.step}</strong> {answered[approval.status]}
              {approval.status === "approved" && approval.required > 1
                ? ` by ${approval.approvals
                    .filter((vote) => vote.decision === "approved")
                    .map((vote) => vote.by)
                    .join(", ")}`
                : approval.answered_by
                  ? ` by ${approval.answered_by}`
                  : ""}
              {approval.comment ? `: “${approval.comment}”` : ""}
            </p>
            {approval.values && Object.keys(approval.values).length > 0 && (
              <ApprovalValues values={approval.values} />
            )}
          </div>
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
  // The first approver fills the form in; later ones approve what they gave.
  const filledIn = approval.values !== null;
  const [values, setValues] = useState<Record<string, string | boolean>>(() =>
    initialValues(approval.inputs),
  );
  const params = { path: { id: runId, step: approval.step } };
  const body = comment.trim() === "" ? {} : { comment: comment.trim() };
  const inputs = filledIn || approval.inputs.length === 0 ? undefined : formValues(approval.inputs, values);

  const send = async (verb: "approve" | "reject") => {
    setSending(true);
    setError(null);
    try {
      if (verb === "approve")
        await answer(
          api.POST("/api/runs/{id}/steps/{step}/approve", {
            params,
            body: { ...body, ...(inputs ? { inputs } : {}) },
            ...asSubmit,
          }),
        );
      else await answer(api.POST("/api/runs/{id}/steps/{step}/reject", { params, body, ...asSubmit }));
      onAnswered();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setSending(false);
    }
  };

  const who = approval.approvers.join(", ");
  const approvedBy = approval.approvals.filter((vote) => vote.decision === "approved").map((vote) => vote.by);
  const early = approval.not_before !== null && Date.parse(approval.not_before) > Date.now();
  return (
    <section className="approval" aria-label={`Approval ${approval.step}`}>
      <h2>Waiting for approval: {approval.step}</h2>
      <p className="approval-message">{approval.message}</p>
      <p className="hint">
        {approval.may_answer ? "You may answer" : `Only ${who} may answer`}; without an answer it is rejected
        at {formatDate(approval.deadline)}.
      </p>
      {approval.required > 1 && (
        <p className="approval-count">
          {approvedBy.length} of {approval.required} approvals
          {approvedBy.length > 0 ? `: ${approvedBy.join(", ")}` : ""}
        </p>
      )}
      {!approval.self_approval && <p className="hint">Whoever submitted the run may not answer it.</p>}
      {early && approval.not_before && (
        <p className="hint">Answers are taken from {formatDate(approval.not_before)}.</p>
      )}
      {filledIn && approval.values && <ApprovalValues values={approval.values} />}
      {approval.may_answer && (
        <form
          className="approval-answer"
          onSubmit={(event) => {
            event.preventDefault();
            void send("approve");
          }}
        >
          {!filledIn &&
            approval.inputs.map((input) => (
              <InputField
                key={input.name}
                input={input}
                value={values[input.name] ?? ""}
                onChange={(value) => setValues((now) => ({ ...now, [input.name]: value }))}
              />
            ))}
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

type FormInput = Approval["inputs"][number];

function initialValues(inputs: readonly FormInput[]): Record<string, string | boolean> {
  return Object.fromEntries(
    inputs.map((input) => [input.name, input.type === "boolean" ? input.default === "true" : ""]),
  );
}

/** The form's values as the API takes them: empty fields left out, so defaults apply. */
function formValues(
  inputs: readonly FormInput[],
  values: Record<string, string | boolean>,
): Record<string, string> {
  const given: Record<string, string> = {};
  for (const input of inputs) {
    const value = values[input.name];
    if (typeof value === "boolean") given[input.name] = String(value);
    else if (value !== undefined && value !== "") given[input.name] = value;
  }
  return given;
}

/** One field of an approval's form, by its type. */
function InputField({
  input,
  value,
  onChange,
}: {
  input: FormInput;
  value: string | boolean;
  onChange: (value: string | boolean) => void;
}) {
  const label = (
    <>
      {input.name}
      {input.required && input.default === undefined ? " (required)" : ""}
      {input.description ? <span className="hint"> {input.description}</span> : null}
    </>
  );
  if (input.type === "boolean") {
    return (
      <label className="approval-input">
        <input type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />{" "}
        {label}
      </label>
    );
  }
  if (input.type === "choice") {
    return (
      <label className="approval-input">
        {label}
        <select value={String(value)} onChange={(e) => onChange(e.target.value)}>
          <option value="">{input.default !== undefined ? `default: ${input.default}` : "choose…"}</option>
          {(input.options ?? []).map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </select>
      </label>
    );
  }
  return (
    <label className="approval-input">
      {label}
      <input
        type={input.type === "number" ? "number" : "text"}
        step={input.type === "number" ? "any" : undefined}
        value={String(value)}
        placeholder={input.default}
        maxLength={4096}
        onChange={(e) => onChange(e.target.value)}
      />
    </label>
  );
}

/** An approval's form as filled in. */
function ApprovalValues({ values }: { values: Record<string, string> }) {
  return (
    <dl className="approval-values" aria-label="Approved inputs">
      {Object.entries(values).map(([name, value]) => (
        <div key={name}>
          <dt>
            <code>{name}</code>
          </dt>
          <dd>
            <code>{value}</code>
          </dd>
        </div>
      ))}
    </dl>
  );
}
