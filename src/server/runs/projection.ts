import { botStates } from "../../core/bot-states.js";
import { stepSummaryOf } from "../../core/event-sequencer.js";
import type { EventOf, RunEvent, StepSummary, UnnumberedEvent } from "../../core/events.js";
import { assertExhaustive } from "../../core/exhaustive.js";
import type { RunPatch, RunRecord, RunRecordChange, Store } from "../../store/index.js";
import { botPatchOf } from "./bot-projection.js";

/** The record fields a run's last event decides, for a run of any kind. */
export function finishedPatch(
  event: Omit<EventOf<"run.finished">, "run_id" | "seq">,
  steps: StepSummary[],
  vars: Record<string, string>,
): RunPatch {
  return {
    status: event.status,
    finished_at: event.ts,
    vars: event.vars ?? vars,
    steps: event.steps ? withTimes(event.steps, steps) : steps,
    error: event.error ?? null,
    ...(event.rolled_back ? { rolled_back: true } : {}),
    ...(event.rollback_failed ? { rollback_failed: event.rollback_failed } : {}),
  };
}

/**
 * The engine's summaries at the run's end, each with what the step's own events told the
 * projection and the engine does not keep: when it started and ended, why it was skipped, the run
 * it was kept from.
 */
function withTimes(summaries: StepSummary[], projected: StepSummary[]): StepSummary[] {
  const told = new Map(projected.map((step) => [stepKeyOf(step), step]));
  return summaries.map((summary) => {
    const step = told.get(stepKeyOf(summary));
    if (!step) return summary;
    const { started_at, ended_at, reason, kept_from } = step;
    return {
      ...(started_at !== undefined ? { started_at } : {}),
      ...(ended_at !== undefined ? { ended_at } : {}),
      ...(reason !== undefined ? { reason } : {}),
      ...(kept_from !== undefined ? { kept_from } : {}),
      ...summary,
    };
  });
}

const stepKeyOf = (step: Pick<StepSummary, "name" | "host">): string => `${step.name}\u0000${step.host}`;

/** What the projection holds of a run while it runs: its step summaries and its variables. */
interface Projected {
  steps: Map<string, StepSummary>;
  vars: Record<string, string>;
}

/**
 * Keeps one run's record in step with its events, fed each stored batch in order, never writing more
 * than they say. A batch's change is stored with the batch (`recordChange`, then `apply` with
 * `recorded`) or after it (`apply` alone: events other writers stored).
 */
export class RunProjection {
  private projected: Projected;
  private botStarted = false;

  constructor(
    private readonly store: Pick<Store, "runs" | "bots">,
    private readonly record: RunRecord,
  ) {
    this.projected = {
      steps: new Map(record.steps.map((s) => [`${s.name}\u0000${s.host}`, s])),
      vars: { ...record.vars },
    };
  }

  /** What `events` change on the run's record, from what the projection holds; it changes nothing here. */
  recordChange = (events: readonly UnnumberedEvent[]): RunRecordChange | undefined =>
    this.fold(events).change;

  /** Applies stored events to the projection, the run's record (unless `recorded`) and a bot run's bot. */
  apply = async (events: readonly RunEvent[], recorded = false): Promise<void> => {
    const { change, projected } = this.fold(events);
    this.projected = projected;
    const id = this.record.id;
    if (change && !recorded) {
      if (change.startedAt !== undefined)
        await this.store.runs.patch(
          id,
          { status: "running", started_at: change.startedAt },
          { ifStatus: ["queued"] },
        );
      if (change.patch) await this.store.runs.patch(id, change.patch);
    }
    if (this.record.kind !== "bot") return;
    for (const event of events) {
      if (event.type === "run.started" && event.runner_id) await this.botRunner(event.runner_id);
      if (event.type !== "bot.state") continue;
      // A runner reports its own job only: a bot.state for another bot (a tenant's) changes no record.
      if (event.bot_id !== this.botId()) continue;
      const patch = botPatchOf(event);
      // The first running state of a life is when it started; a restart keeps it.
      if ((event.state === "running" || event.state === "starting") && !this.botStarted) {
        this.botStarted = true;
        patch.started_at = event.ts;
      }
      // A removed bot stays removed; only its current run (not one an update tries or replaced) changes it.
      await this.store.bots.update(event.bot_id, patch, { ifState: nonRemoved, ifRun: id });
    }
  };

  /** What the projection would hold after `events`, and what they change on the run's record. */
  private fold(events: readonly UnnumberedEvent[]): {
    projected: Projected;
    change: RunRecordChange | undefined;
  } {
    let steps: Map<string, StepSummary> | undefined;
    let vars: Record<string, string> | undefined;
    const change: RunRecordChange = {};
    const patch: RunPatch = {};
    const stepsNow = () => {
      steps ??= new Map(this.projected.steps);
      return steps;
    };
    let stepsChanged = false;
    for (const event of events) {
      switch (event.type) {
        case "run.started":
          change.startedAt ??= event.ts;
          break;
        case "step.started": {
          const key = `${event.step}\u0000${event.host}`;
          stepsNow().set(key, {
            name: event.step,
            host: event.host,
            status: "running",
            exit_code: null,
            attempts: event.attempt,
            // A later attempt keeps the first one's start.
            started_at: stepsNow().get(key)?.started_at ?? event.ts,
          });
          stepsChanged = true;
          break;
        }
        case "step.waiting": {
          const key = `${event.step}\u0000${event.host}`;
          const started = stepsNow().get(key);
          stepsNow().set(key, {
            name: event.step,
            host: event.host,
            status: "waiting",
            exit_code: null,
            attempts: started?.attempts ?? 1,
            started_at: started?.started_at ?? event.ts,
          });
          stepsChanged = true;
          break;
        }
        case "step.finished": {
          const key = `${event.step}\u0000${event.host}`;
          const started = stepsNow().get(key)?.started_at;
          stepsNow().set(key, {
            ...stepSummaryOf(event),
            ...(started !== undefined ? { started_at: started } : {}),
          });
          stepsChanged = true;
          break;
        }
        case "vars.exported":
          vars = { ...(vars ?? this.projected.vars), ...event.vars };
          patch.vars = vars;
          break;
        case "run.finished":
          Object.assign(
            patch,
            finishedPatch(event, [...(steps ?? this.projected.steps).values()], vars ?? this.projected.vars),
          );
          stepsChanged = false;
          break;
        case "bot.state":
          // The bot's record, not the run's (see `apply`).
          break;
        case "run.queued":
        case "step.output":
        case "step.retrying":
        case "approval.answered":
        case "step.called":
        case "approval.vote":
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
    if (stepsChanged) patch.steps = [...(steps ?? this.projected.steps).values()];
    if (Object.keys(patch).length > 0) change.patch = patch;
    const projected = { steps: steps ?? this.projected.steps, vars: vars ?? this.projected.vars };
    return { projected, change: change.startedAt !== undefined || change.patch ? change : undefined };
  }

  /** The bot whose life this run is (its spec says); none for other kinds. */
  private botId(): string | undefined {
    if (this.record.kind !== "bot") return undefined;
    const botId = (this.record.spec as { bot_id?: unknown } | null)?.bot_id;
    return typeof botId === "string" ? botId : undefined;
  }

  /** A bot run's runner is the bot's: where its container runs. */
  private async botRunner(runnerId: string): Promise<void> {
    const botId = this.botId();
    if (botId)
      await this.store.bots.update(
        botId,
        { runner_id: runnerId },
        { ifState: nonRemoved, ifRun: this.record.id },
      );
  }
}

const nonRemoved = botStates.filter((state) => state !== "removed");
