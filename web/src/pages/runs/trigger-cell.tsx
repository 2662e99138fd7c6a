import { runTriggers } from "../../../../src/core/run-states.js";
import type { Schema } from "../../api.js";
import { shortRunId } from "./step-facts.js";

type Run = Pick<Schema<"Run">, "trigger" | "trigger_ref" | "retry_of" | "retry_from" | "parent_run_id">;

/** The list's trigger filter: what started the runs, and `retry` for the runs that retry another. */
export const triggerFilters = [...runTriggers, "retry"] as const;
export type TriggerFilter = (typeof triggerFilters)[number];

const runLink = (id: string) => (
  <a href={`#/runs/${encodeURIComponent(id)}`} title={id}>
    {shortRunId(id)}
  </a>
);

/**
 * What started a run, as the runs list says it: a person, a program, a schedule, a hook (by
 * name), a retry or re-run of another run, a forge, or a call from another run (linked).
 */
export function TriggerCell({ run }: { run: Run }) {
  if (run.retry_of)
    return (
      <span data-trigger="retry">
        retry of {runLink(run.retry_of)}
        {run.retry_from ? ` from ${run.retry_from}` : ""}
      </span>
    );
  switch (run.trigger) {
    case "rerun":
      return (
        <span data-trigger="rerun">re-run of {run.trigger_ref ? runLink(run.trigger_ref) : "a run"}</span>
      );
    case "call": {
      const parent = run.parent_run_id ?? run.trigger_ref;
      return <span data-trigger="call">call from {parent ? runLink(parent) : "a run"}</span>;
    }
    case "webhook":
      return <span data-trigger="webhook">hook {run.trigger_ref ?? ""}</span>;
    case "schedule":
      return (
        <span data-trigger="schedule" title={run.trigger_ref ?? undefined}>
          schedule
        </span>
      );
    default:
      return <span data-trigger={run.trigger}>{run.trigger}</span>;
  }
}
