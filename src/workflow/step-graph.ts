/**
 * Steps as a graph (some step has `depends`): a step starts once all it depends on have ended, up to
 * `max_parallel` at once, and sees the exports of its ancestors only.
 */
import { errorInfo } from "../core/errors.js";
import type { ErrorInfo, StepStatus } from "../core/events.js";
import type { Step } from "./model.js";
import { notRunResult, runStep, type StepContext, type StepResult, skipped } from "./step-run.js";

/**
 * Runs a graph's steps, results in file order. A step whose dependency failed (without `continue_on_error`),
 * was canceled or was skipped so is skipped, saying which; steps not depending on a failure go on.
 */
export async function runGraph(
  steps: Step[],
  base: Record<string, string>,
  ctx: StepContext,
): Promise<StepResult[]> {
  const ancestors = ancestorsOf(steps);
  const results = new Map<string, StepResult>();
  const running = new Set<Promise<void>>();
  const pending = [...steps];

  const startReady = (): void => {
    let changed = true;
    while (changed) {
      changed = false;
      for (const step of [...pending]) {
        if (!(step.depends ?? []).every((d) => results.has(d.step))) continue;
        pending.splice(pending.indexOf(step), 1);
        changed = true;
        const settled = settleWithoutRunning(step, results, ancestors, ctx);
        if (settled) {
          results.set(step.name, settled);
          continue;
        }
        const vars = varsFor(step, ancestors, results, base);
        const task = runStep(step, vars, ctx).then((result) => {
          results.set(step.name, result);
          running.delete(task);
        });
        running.add(task);
      }
    }
  };

  startReady();
  while (running.size > 0) {
    await Promise.race(running);
    startReady();
  }
  return steps.map((step) => results.get(step.name) ?? notRunResult(step, "canceled", ctx.nextEnd()));
}

/** A step that does not run (run canceled, held back by a dependency, exports disagree); else undefined. */
function settleWithoutRunning(
  step: Step,
  results: Map<string, StepResult>,
  ancestors: Map<string, Step[]>,
  ctx: StepContext,
): StepResult | undefined {
  if (ctx.signal.aborted) return notRunResult(step, "canceled", ctx.nextEnd());
  for (const dependency of step.depends ?? []) {
    const result = results.get(dependency.step);
    const held = result && heldBack(result);
    if (!held) continue;
    const reason =
      held.blockedBy === undefined
        ? `dependency "${dependency.step}" ${held.status === "canceled" ? "was canceled" : "failed"}`
        : `dependency "${dependency.step}" did not run ("${held.blockedBy}" failed)`;
    return everywhere(step, ctx, reason, "skipped", held.blockedBy ?? dependency.step);
  }
  const conflict = exportConflict(step, ancestors, results);
  if (!conflict) return undefined;
  ctx.emit({ type: "notice", level: "error", message: conflict.message, step: step.name });
  const result = everywhere(step, ctx, conflict.message, "skipped", undefined, conflict);
  result.failure = { status: "failed", error: conflict };
  delete result.notRun;
  return result;
}

/** Whether a finished step holds its dependents back, and the failed step at the root of it. */
function heldBack(result: StepResult): { status: StepStatus; blockedBy?: string } | undefined {
  if (result.notRun?.blockedBy !== undefined) return result.notRun;
  if (result.notRun?.status === "canceled") return { status: "canceled" };
  if (result.failure && !result.step.continueOnError) {
    return { status: result.failure.status === "canceled" ? "canceled" : "failed" };
  }
  return undefined;
}

/** A step settled without running, on each of its hosts and combinations, with a `step.finished` each. */
function everywhere(
  step: Step,
  ctx: StepContext,
  reason: string,
  status: "skipped",
  blockedBy: string | undefined,
  error?: ErrorInfo,
): StepResult {
  const result = notRunResult(step, status, ctx.nextEnd(), blockedBy);
  const instances = step.matrix?.instances ?? [{ name: step.name, vars: {} }];
  result.summaries = instances.flatMap((instance) =>
    step.targets.map((host) => {
      // After a restart, what was settled before is read back as it was.
      const prior = ctx.prior(instance.name, host)?.summary;
      return prior ?? skipped(ctx, { name: instance.name }, host, reason, status, error).summary;
    }),
  );
  return result;
}

/** Every step's ancestors, in file order; parsing refused cycles, so the walk ends. */
export function ancestorsOf(steps: Step[]): Map<string, Step[]> {
  const byName = new Map(steps.map((step) => [step.name, step]));
  const found = new Map<string, Set<string>>();
  const visit = (step: Step): Set<string> => {
    const known = found.get(step.name);
    if (known) return known;
    const all = new Set<string>();
    found.set(step.name, all);
    for (const dependency of step.depends ?? []) {
      const parent = byName.get(dependency.step);
      if (!parent) continue;
      all.add(parent.name);
      for (const name of visit(parent)) all.add(name);
    }
    return all;
  };
  return new Map(steps.map((step) => [step.name, steps.filter((s) => visit(step).has(s.name))]));
}

/** The exports a step sees, by name: each exporting ancestor's, less those a later one overrides. */
function visibleExports(
  step: Step,
  ancestors: Map<string, Step[]>,
  results: Map<string, StepResult>,
): Map<string, { from: string; value: string }[]> {
  const byName = new Map<string, { from: string; value: string }[]>();
  for (const ancestor of ancestors.get(step.name) ?? []) {
    for (const [name, value] of Object.entries(results.get(ancestor.name)?.exports ?? {})) {
      const list = byName.get(name) ?? [];
      list.push({ from: ancestor.name, value });
      byName.set(name, list);
    }
  }
  for (const [name, list] of byName) {
    const before = (from: string, other: string): boolean =>
      (ancestors.get(other) ?? []).some((s) => s.name === from);
    byName.set(
      name,
      list.filter((entry) => !list.some((other) => other !== entry && before(entry.from, other.from))),
    );
  }
  return byName;
}

/** Two ancestors, neither after the other, exported different values for one name. */
function exportConflict(
  step: Step,
  ancestors: Map<string, Step[]>,
  results: Map<string, StepResult>,
): ErrorInfo | undefined {
  for (const [name, list] of visibleExports(step, ancestors, results)) {
    const other = list.find((entry) => entry.value !== list[0]?.value);
    if (!other || !list[0]) continue;
    return errorInfo(
      "EXPORT_CONFLICT",
      `step "${step.name}": the steps it depends on, "${list[0].from}" and "${other.from}", exported different values for ${name}`,
      `Neither of them depends on the other, so which value "${step.name}" should see is a guess: make one depend on the other, or export different names.`,
    );
  }
  return undefined;
}

/** Workflow and run variables, under the exports of the step's ancestors. */
function varsFor(
  step: Step,
  ancestors: Map<string, Step[]>,
  results: Map<string, StepResult>,
  base: Record<string, string>,
): Record<string, string> {
  const vars = { ...base };
  for (const [name, list] of visibleExports(step, ancestors, results)) {
    const value = list[0]?.value;
    if (value !== undefined) vars[name] = value;
  }
  return vars;
}
