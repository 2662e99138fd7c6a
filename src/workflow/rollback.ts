/**
 * A failed run undoes what its steps did: the `rollback:` of each step (each matrix
 * combination) that succeeded runs, latest end first, on the hosts where it succeeded.
 */
import type { StepSummary } from "../core/events.js";
import type { Step, StepRollback } from "./model.js";
import { type InstanceRun, notRunSummary, type StepContext, type StepResult } from "./step-run.js";

export interface RollbackOutcome {
  summaries: StepSummary[];
  /** The first rollback step that did not succeed; the ones after it were not run. */
  failed?: string;
}

/** The name a step's rollback runs under: in events, summaries and the CLI. */
export function rollbackStepName(step: string): string {
  return `rollback: ${step}`;
}

/**
 * Runs the rollbacks of the succeeded steps of `results` one after another, each on all its
 * hosts at once, with the variables its step ran with and the step's own exports. The first
 * that fails stops the rest: undoing further on top of an undo that failed could make things
 * worse, and a person has to look. Undefined when no step that succeeded has a rollback.
 */
export async function runRollbacks(
  results: StepResult[],
  ctx: Pick<StepContext, "runOnHost" | "signal">,
): Promise<RollbackOutcome | undefined> {
  const todo = results
    .flatMap((result) => {
      const rollback = result.step.rollback;
      if (!rollback) return [];
      return result.instances.filter((i) => i.succeeded.length > 0).map((i) => rollbackStep(i, rollback));
    })
    .sort((a, b) => b.endedAt - a.endedAt);
  if (todo.length === 0) return undefined;
  const summaries: StepSummary[] = [];
  let failed: string | undefined;
  for (const { step, vars } of todo) {
    if (failed !== undefined || ctx.signal.aborted) {
      const status = ctx.signal.aborted ? "canceled" : "skipped";
      summaries.push(...step.targets.map((host) => notRunSummary(step.name, host, status)));
      continue;
    }
    const outcomes = await Promise.all(
      step.targets.map((host) => ctx.runOnHost(step, host, vars, ctx.signal)),
    );
    summaries.push(...outcomes.map((o) => o.summary));
    if (outcomes.some((o) => o.summary.status !== "success")) failed = step.name;
  }
  return { summaries, ...(failed !== undefined ? { failed } : {}) };
}

/** A combination's rollback as a step of its own: once, on the hosts where it succeeded. */
function rollbackStep(
  instance: InstanceRun,
  rollback: StepRollback,
): { step: Step; vars: Record<string, string>; endedAt: number } {
  const {
    when: _when,
    depends: _depends,
    matrix: _matrix,
    rollback: _rollback,
    cwd: _cwd,
    cwdPos: _cwdPos,
    ...kept
  } = instance.step;
  return {
    step: {
      ...kept,
      ...rollback,
      name: rollbackStepName(instance.step.name),
      targets: instance.succeeded,
      exportVars: false,
      expectVars: [],
      retryCount: 0,
      continueOnError: false,
    },
    vars: { ...instance.vars, ...instance.exports },
    endedAt: instance.endedAt,
  };
}
