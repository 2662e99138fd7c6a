import { botStates } from "../../core/bot-states.js";
import { stepSummaryOf } from "../../core/event-sequencer.js";
import type { EventOf, RunEvent, StepSummary } from "../../core/events.js";
import { assertExhaustive } from "../../core/exhaustive.js";
import type { RunPatch, RunRecord, Store } from "../../store/index.js";
import { botPatchOf } from "./bot-projection.js";

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
    ...(event.rolled_back ? { rolled_back: true } : {}),
    ...(event.rollback_failed ? { rollback_failed: event.rollback_failed } : {}),
  };
}

/**
 * Keeps one run's record in step with its events (status, steps, variables), whatever its kind.
 * It is fed each stored batch in order; what it writes is never more than the events say.
 */
export class RunProjection {
  private readonly steps: Map<string, StepSummary>;
  private readonly vars: Record<string, string>;
  private botStarted = false;

  constructor(
    private readonly store: Pick<Store, "runs" | "bots">,
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
          await this.store.runs.update(
            id,
            { status: "running", started_at: event.ts },
            { ifStatus: ["queued"] },
          );
          if (this.record.kind === "bot" && event.runner_id) await this.botRunner(event.runner_id);
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
        case "step.waiting": {
          const key = `${event.step}\u0000${event.host}`;
          const started = this.steps.get(key);
          this.steps.set(key, {
            name: event.step,
            host: event.host,
            status: "waiting",
            exit_code: null,
            attempts: started?.attempts ?? 1,
          });
          stepsChanged = true;
          break;
        }
        case "step.finished":
          this.steps.set(`${event.step}\u0000${event.host}`, stepSummaryOf(event));
          stepsChanged = true;
          break;
        case "vars.exported":
          Object.assign(this.vars, event.vars);
          await this.store.runs.update(id, { vars: this.vars });
          break;
        case "run.finished":
          await this.store.runs.update(id, finishedPatch(event, [...this.steps.values()], this.vars));
          stepsChanged = false;
          break;
        case "bot.state": {
          // A runner reports for its own job only: a bot.state naming any bot but this run's
          // (another tenant's, say) is kept in the log and changes no record.
          if (event.bot_id !== this.botId()) break;
          const patch = botPatchOf(event);
          // The first running state of a life is when it started; a restart keeps it.
          if (event.state === "running" && !this.botStarted) {
            this.botStarted = true;
            patch.started_at = event.ts;
          }
          // A removed bot stays removed, whatever its last life still reports.
          await this.store.bots.update(event.bot_id, patch, { ifState: nonRemoved });
          break;
        }
        case "run.queued":
        case "step.output":
        case "step.retrying":
        case "approval.answered":
        case "artifact.created":
        case "agent.message":
        case "agent.tool_call":
        case "agent.tool_result":
        case "agent.usage":
        case "notice":
          // The record does not hold these; the event log does.
          break;
        default:
          assertExhaustive(event, "event");
      }
    }
    if (stepsChanged) await this.store.runs.update(id, { steps: [...this.steps.values()] });
  };

  /** The bot whose life this run is (its spec says); none for other kinds. */
  private botId(): string | undefined {
    if (this.record.kind !== "bot") return undefined;
    const botId = (this.record.spec as { bot_id?: unknown } | null)?.bot_id;
    return typeof botId === "string" ? botId : undefined;
  }

  /** A bot run's runner is the bot's: where its container runs. */
  private async botRunner(runnerId: string): Promise<void> {
    const botId = this.botId();
    if (botId) await this.store.bots.update(botId, { runner_id: runnerId }, { ifState: nonRemoved });
  }
}

const nonRemoved = botStates.filter((state) => state !== "removed");
