import { useState } from "react";
import type { Schema } from "../../api.js";
import { formatDuration } from "./format.js";
import { RetryConfirm } from "./retry-confirm.js";
import { type StepFacts, shortRunId } from "./step-facts.js";

type Run = Schema<"Run">;
type StepSummary = Schema<"StepSummary">;

/** A step as the table shows it: the events tell a step's retries, which no summary keeps. */
export type StepState = Pick<StepSummary, "name" | "host"> & { status: StepSummary["status"] | "retrying" };
export type StepRow = StepState & Partial<Omit<StepSummary, "status">>;

/**
 * A run that succeeded with a failed step let that step fail (`continue_on_error`): the table
 * says so rather than show a bare "failed" under "success".
 */
function stepStatusText(step: StepState, run: Run): string {
  return run.status === "success" && step.status === "failed" ? "failed (allowed)" : step.status;
}

/** The step a summary's name belongs to: a matrix combination's is its step's. */
function stepOfCombination(run: Run, name: string): string {
  return run.graph?.steps.find((step) => step.matrix?.includes(name))?.name ?? name;
}

/**
 * The run's steps, a row per step and host: status (with why a step was skipped, or the run its
 * outcome was kept from), exit code, attempts, duration; after the run, "Retry from here", which
 * shows what the retry would keep and run again before it starts.
 */
export function StepTable({
  run,
  steps,
  factsOf,
  live,
  onRetry,
}: {
  run: Run;
  steps: StepRow[];
  factsOf: (step: StepRow) => StepFacts;
  live: boolean;
  onRetry: (from: string) => void;
}) {
  const [asking, setAsking] = useState<string | null>(null);
  const retries = run.kind === "workflow" && !live;
  return (
    <>
      <div className="table-wrap">
        <table aria-label="Steps">
          <thead>
            <tr>
              <th scope="col">Step</th>
              <th scope="col">Host</th>
              <th scope="col">Status</th>
              <th scope="col">Exit</th>
              <th scope="col">Attempts</th>
              <th scope="col">Duration</th>
              {retries && <th scope="col">Retry</th>}
            </tr>
          </thead>
          <tbody>
            {steps.map((step) => {
              const facts = factsOf(step);
              return (
                <tr key={`${step.name}@${step.host}`} data-step={step.name}>
                  <td>{step.name}</td>
                  <td>{step.host}</td>
                  <td
                    className={`status-${step.status}`}
                    title={
                      stepStatusText(step, run) === step.status
                        ? undefined
                        : "this step may fail (continue_on_error): the run went on"
                    }
                  >
                    {stepStatusText(step, run)}
                    {facts.keptFrom && (
                      <span className="step-kept-from">
                        {" "}
                        (kept from{" "}
                        <a href={`#/runs/${encodeURIComponent(facts.keptFrom)}`} title={facts.keptFrom}>
                          {shortRunId(facts.keptFrom)}
                        </a>
                        )
                      </span>
                    )}
                    {step.status === "skipped" && facts.reason && (
                      <span className="step-skip-reason">: {facts.reason}</span>
                    )}
                  </td>
                  <td>{step.exit_code ?? ""}</td>
                  <td>{facts.keptFrom ? "" : (step.attempts ?? "")}</td>
                  <td>
                    {facts.durationMs !== undefined && !facts.keptFrom
                      ? formatDuration(facts.durationMs)
                      : ""}
                  </td>
                  {retries && (
                    <td>
                      {!step.name.startsWith("rollback: ") && (
                        <button
                          type="button"
                          className="link"
                          aria-label={`Retry from ${step.name} on ${step.host}`}
                          onClick={() => setAsking(stepOfCombination(run, step.name))}
                        >
                          Retry from here
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {asking !== null && (
        <RetryConfirm runId={run.id} from={asking} onRetry={onRetry} onClose={() => setAsking(null)} />
      )}
    </>
  );
}
