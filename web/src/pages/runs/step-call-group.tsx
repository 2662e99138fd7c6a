import type { CSSProperties } from "react";
import type { Schema } from "../../api.js";
import { formatDuration } from "./format.js";
import { shortRunId, stepFacts } from "./step-facts.js";

type CalledRun = Schema<"CalledRun">;

/** A child step's line inside an opened call box. */
const lineHeight = 22;
/** The child steps an opened call box lists; past that, a line says how many more its run has. */
const mostLines = 12;

/** How much taller a call step's box grows when it shows its child's steps: a line each, and the run's. */
export function callGroupHeight(call: CalledRun): number {
  const lines = Math.min(call.steps.length, mostLines) + (call.steps.length > mostLines ? 1 : 0);
  return (lines + 1) * lineHeight + 10;
}

/** The button on a call step's box that opens its child's steps in place. */
export function CallToggle({
  call,
  open,
  onToggle,
  style,
}: {
  call: CalledRun;
  open: boolean;
  onToggle: () => void;
  style: CSSProperties;
}) {
  return (
    <button
      type="button"
      className="step-call-toggle"
      style={style}
      aria-expanded={open}
      aria-label={`${open ? "Hide" : "Show"} the ${call.steps.length} steps of ${call.workflow}, called by ${call.step}`}
      title={`${open ? "Hide" : "Show"} the steps of the called run`}
      onClick={onToggle}
    >
      {open ? "▾" : "▸"}
    </button>
  );
}

/**
 * A call step's child run drawn in place under its box: a link to the child's page, then each
 * of its steps with its state and duration.
 */
export function CallSteps({ call, style, now }: { call: CalledRun; style: CSSProperties; now: number }) {
  const shown = call.steps.slice(0, mostLines);
  const onSeveralHosts = (name: string) => call.steps.filter((step) => step.name === name).length > 1;
  return (
    <section
      className="step-call-group"
      style={style}
      aria-label={`Steps of ${call.workflow}, called by ${call.step}`}
      data-call={call.step}
    >
      <a
        className="step-call-run"
        href={`#/runs/${encodeURIComponent(call.run_id)}`}
        title={`the called run ${call.run_id}`}
      >
        {call.workflow}
        {call.version !== null ? ` v${call.version}` : ""} · {shortRunId(call.run_id)}
      </a>
      <ol>
        {shown.map((step) => {
          const duration = stepFacts([step], now).durationMs;
          return (
            <li
              key={`${step.name}@${step.host}`}
              data-state={step.status}
              className={`step-call-step step-${step.status}`}
            >
              <span className="step-call-name">
                {step.name}
                {onSeveralHosts(step.name) ? ` on ${step.host}` : ""}
              </span>{" "}
              <span className={`status-${step.status}`}>{step.status}</span>
              {duration !== undefined && (
                <span className="step-box-duration"> · {formatDuration(duration)}</span>
              )}
            </li>
          );
        })}
        {call.steps.length > mostLines && (
          <li className="step-call-more">and {call.steps.length - mostLines} more in its run</li>
        )}
      </ol>
    </section>
  );
}
