import type { Schema } from "../../api.js";

type Run = Schema<"Run">;

/**
 * The child runs of a run's `workflow.call` steps: one group per call, collapsed, its steps and
 * their states inside, and a link to the child's own page.
 */
export function CalledRuns({ run }: { run: Run }) {
  if (!run.calls || run.calls.length === 0) return null;
  return (
    <section className="called-runs" aria-label="Called workflows">
      <h2>Called workflows</h2>
      {run.calls.map((call) => (
        <details key={call.run_id} className="called-run">
          <summary>
            <strong>{call.step}</strong> calls {call.workflow}
            {call.version !== null ? ` v${call.version}` : ""}{" "}
            <span className={`status-${call.status}`}>{call.status}</span>{" "}
            <a href={`#/runs/${encodeURIComponent(call.run_id)}`}>open run {call.run_id}</a>
          </summary>
          <ul aria-label={`Steps of ${call.workflow}`}>
            {call.steps.map((step) => (
              <li key={`${step.name}@${step.host}`}>
                {step.name} <span className={`status-${step.status}`}>{step.status}</span>
              </li>
            ))}
          </ul>
        </details>
      ))}
    </section>
  );
}

/** A run a `workflow.call` step started: which run and step called it. */
export function CalledBy({ run }: { run: Run }) {
  if (!run.parent_run_id) return null;
  return (
    <>
      <dt>Called by</dt>
      <dd>
        <a href={`#/runs/${encodeURIComponent(run.parent_run_id)}`}>{run.parent_run_id}</a>
        {run.parent_step ? ` (step ${run.parent_step})` : ""}
      </dd>
    </>
  );
}

/** The `on:` handler steps that did not succeed: reported, the run's status standing. */
export function FailedHandlers({ run }: { run: Run }) {
  const failed = run.steps.filter(
    (step) =>
      /^on (success|failure|cancel|exit): /.test(step.name) &&
      (step.status === "failed" || step.status === "timeout"),
  );
  if (failed.length === 0) return null;
  return (
    <p role="alert" className="error run-handlers">
      Handler {failed.map((step) => step.name).join(", ")} did not succeed; the run's status ({run.status})
      stands.
    </p>
  );
}
