import { useEffect, useRef, useState } from "react";
import { type AnswerOf, type ApiError, answer, api, asApiError } from "../../api.js";

/**
 * Asks before a retry from a step starts: the server's plan of what the retry keeps (its outcomes
 * and exports, not run again) and what it runs again, then the retry on "Retry".
 */
export function RetryConfirm({
  runId,
  from,
  onRetry,
  onClose,
}: {
  runId: string;
  from: string;
  onRetry: (from: string) => void;
  onClose: () => void;
}) {
  const [plan, setPlan] = useState<AnswerOf<"getRetryPlan"> | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const shown = useRef<HTMLElement>(null);
  // Opened from a row far up a long table (or on a phone): brought into view.
  useEffect(() => {
    shown.current?.scrollIntoView({ block: "nearest" });
  }, []);
  useEffect(() => {
    let stopped = false;
    setPlan(null);
    setError(null);
    answer(api.GET("/api/runs/{id}/retry-plan", { params: { path: { id: runId }, query: { from } } })).then(
      (answered) => !stopped && setPlan(answered),
      (caught: unknown) => !stopped && setError(asApiError(caught)),
    );
    return () => {
      stopped = true;
    };
  }, [runId, from]);
  return (
    <section ref={shown} className="retry-confirm" role="dialog" aria-label={`Retry from ${from}`}>
      <h3>Retry from {from}?</h3>
      {error && (
        <p role="alert" className="error">
          {error.message}
          {error.hint ? ` ${error.hint}` : ""}
        </p>
      )}
      {!plan && !error && <p className="loading">Planning…</p>}
      {plan && (
        <div className="retry-plan">
          <div>
            <h4>Kept ({plan.kept.length})</h4>
            {plan.kept.length === 0 ? (
              <p className="hint">Nothing: every step runs again.</p>
            ) : (
              <ul aria-label="Kept steps">
                {plan.kept.map((name) => (
                  <li key={name}>{name}</li>
                ))}
              </ul>
            )}
          </div>
          <div>
            <h4>Run again ({plan.again.length})</h4>
            <ul aria-label="Steps run again">
              {plan.again.map((name) => (
                <li key={name}>{name}</li>
              ))}
            </ul>
          </div>
        </div>
      )}
      <div className="run-actions">
        <button type="button" disabled={!plan} onClick={() => onRetry(from)}>
          Retry
        </button>
        <button type="button" className="secondary" onClick={onClose}>
          Cancel
        </button>
      </div>
    </section>
  );
}
