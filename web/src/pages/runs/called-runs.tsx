import type { Schema } from "../../api.js";

type Run = Schema<"Run">;

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
