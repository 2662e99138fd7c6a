import { type EventOf, type RunEvent, type StepSummary, stepSummaryOf } from "../../core/events.js";
import { assertExhaustive } from "../../core/exhaustive.js";
import type { RunPatch, RunRecord, Store } from "../../store/types.js";

/** The record fields a run's last event decides, for a run of any kind. */
export function finishedPatch(
  event: EventOf<"run.finished">,
  steps: StepSummary[],
  vars: Record<string, string>,
): RunPatch {
  return {
    status: event.status,
    finished_at: event.ts,
    vars: event.vars ?? vars,
    steps: event.steps ?? steps,
    error: event.error ?? null,
  };
}

/**
 * Keeps one run's record in step with its events (status, steps, variables), whatever its kind.
 * It is fed each stored batch in order; what it writes is never more than the events say.
 */
export class RunProjection {
  private readonly steps: Map<string, StepSummary>;
  private readonly vars: Record<string, string>;

  constructor(
    private readonly store: Store,
    private readonly record: RunRecord,
  ) {
    this.steps = new Map(record.steps.map((s) => [`${s.name}\u0000${s.host}`, s]));
    this.vars = { ...record.vars };
  }

  /** Applies a batch of stored events to the run record. */
  apply = async (events: readonly RunEvent[]): Promise<void> => {
    const id = this.record.id;
    let stepsChanged = false;
    for (const event of events) {
      switch (event.type) {
        case "run.started":
          await this.store.updateRun(
            id,
            { status: "running", started_at: event.ts },
            { ifStatus: ["queued"] },
          );
          break;
        case "step.started":
          this.steps.set(`${event.step}\u0000${event.host}`, {
            name: event.step,
            host: event.host,
            status: "running",
            exit_code: null,
            attempts: event.attempt,
          });
          stepsChanged = true;
          break;
        case "step.finished":
          this.steps.set(`${event.step}\u0000${event.host}`, stepSummaryOf(event));
          stepsChanged = true;
          break;
        case "vars.exported":
          Object.assign(this.vars, event.vars);
          await this.store.updateRun(id, { vars: this.vars });
          break;
        case "run.finished":
          await this.store.updateRun(id, finishedPatch(event, [...this.steps.values()], this.vars));
          stepsChanged = false;
          break;
        case "run.queued":
        case "step.output":
        case "step.retrying":
        case "artifact.created":
        case "agent.message":
        case "agent.tool_call":
        case "agent.tool_result":
        case "agent.usage":
        case "bot.state":
        case "notice":
          // The record does not hold these; the event log does.
          break;
        default:
          assertExhaustive(event, "event");
      }
    }
    if (stepsChanged) await this.store.updateRun(id, { steps: [...this.steps.values()] });
  };
}
