import type { EventOf, RunEvent } from "../../../../src/core/events.js";
import { formatDuration } from "./format.js";

type Retry = EventOf<"step.retrying">;

/** The retries the events told, in order; a resumed page keeps those it had (by seq). */
export function retriesOf(events: RunEvent[], into: Map<number, Retry>): void {
  for (const event of events) if (event.type === "step.retrying") into.set(event.seq, event);
}

const causes: Record<NonNullable<Retry["reason"]>, string> = {
  error: "failed",
  timeout: "timed out",
  runner_lost: "lost its runner",
};

/**
 * Each retry of the run's steps: which attempt failed, why, and how long the step waited before
 * the next one (the step's `retry:` policy).
 */
export function RunRetries({ retries }: { retries: Retry[] }) {
  if (retries.length === 0) return null;
  return (
    <>
      <h2>Retries</h2>
      <ul className="run-retries" aria-label="Retries">
        {retries.map((retry) => (
          <li key={retry.seq}>
            <strong>{retry.step}</strong> on {retry.host}: attempt {retry.attempt}
            {retry.max_attempts ? ` of ${retry.max_attempts}` : ""} {causes[retry.reason ?? "error"]}
            {retry.exit_code !== null ? ` (exit ${retry.exit_code})` : ""}
            {retry.error && retry.exit_code === null ? `: ${retry.error.message}` : ""}; next attempt after{" "}
            {formatDuration(retry.delay_ms)}
          </li>
        ))}
      </ul>
    </>
  );
}
