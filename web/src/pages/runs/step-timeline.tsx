import { durationTicks } from "../../charts/scale.js";
import { formatDuration, formatTick } from "./format.js";
import { type StepFacts, shortRunId } from "./step-facts.js";

/** One row of the timeline: a step on a host (or a matrix combination), its state and facts. */
export interface TimelineRow {
  key: string;
  label: string;
  state: string;
  facts: StepFacts;
}

/**
 * The run's steps as bars on one time axis, from the run's start to its end (now while it runs):
 * what ran at once, what waited, what took long. A step that did not run here says why instead of
 * a bar (skipped, kept from another run, not started).
 */
export function StepTimeline({ rows, start, end }: { rows: TimelineRow[]; start: number; end: number }) {
  const spans = rows.flatMap((row) => (row.facts.span ? [row.facts.span] : []));
  const from = Math.min(start, ...spans.map((span) => span.start));
  const to = Math.max(end, ...spans.map((span) => span.end), from + 1);
  // The axis runs on to a round duration past the run's end, ticked at round durations.
  const axis = durationTicks(to - from);
  const length = axis.top;
  const percent = (at: number) => `${(((at - from) / length) * 100).toFixed(2)}%`;
  return (
    <div className="step-timeline">
      <table aria-label={`Timeline: ${formatDuration(to - from)} from the run's start`}>
        <thead>
          <tr className="step-timeline-axis">
            <th scope="col" className="step-timeline-label">
              Step
            </th>
            <th scope="col" className="step-timeline-track" aria-label="Time from the run's start">
              <span className="step-timeline-lane">
                {axis.ticks.map((at, index) => (
                  <span
                    key={`tick ${at}`}
                    className="step-timeline-tick"
                    style={{ left: percent(from + at) }}
                    data-tick={index}
                  >
                    {formatTick(at)}
                  </span>
                ))}
              </span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.key} data-step={row.key}>
              <th scope="row" className="step-timeline-label" title={row.label}>
                {row.label}
              </th>
              <td className="step-timeline-track">
                {row.facts.span ? (
                  <span className="step-timeline-lane">
                    <span
                      className={`step-timeline-bar step-${row.state}`}
                      style={{
                        left: percent(row.facts.span.start),
                        width: `max(2px, ${(((row.facts.span.end - row.facts.span.start) / length) * 100).toFixed(2)}%)`,
                      }}
                      data-start-ms={row.facts.span.start - from}
                      data-end-ms={row.facts.span.end - from}
                      title={`${row.label}: ${row.state}, ${formatDuration(row.facts.span.end - row.facts.span.start)} from ${formatDuration(row.facts.span.start - from)}`}
                    >
                      <span className="step-timeline-bar-text">
                        {formatDuration(row.facts.span.end - row.facts.span.start)}
                      </span>
                    </span>
                  </span>
                ) : (
                  <span className="step-timeline-none">
                    {row.facts.keptFrom ? (
                      <a href={`#/runs/${encodeURIComponent(row.facts.keptFrom)}`} title={row.facts.keptFrom}>
                        kept from {shortRunId(row.facts.keptFrom)}
                      </a>
                    ) : row.state === "skipped" ? (
                      `skipped${row.facts.reason ? `: ${row.facts.reason}` : ""}`
                    ) : row.state === "pending" ? (
                      "not started"
                    ) : (
                      row.state
                    )}
                  </span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
