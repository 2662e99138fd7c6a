/**
 * What a retry keeps of its run: outcomes and exports of steps that succeeded and do not come after
 * (in a graph: depend on) the step it retries from. Everything else runs again.
 */
import type { EventInput, StepSummary } from "../core/events.js";
import { type Diagnostic, isStepGraph, type Step, type Workflow } from "./model.js";
import type { HostProgress } from "./resume.js";
import { hostKey } from "./resume.js";
import { didYouMean } from "./suggest.js";
import { scriptExports, undefinedVariables } from "./undefined-vars.js";

/** One host of one step (or matrix combination) whose outcome a retry keeps. */
export interface KeptStep {
  /** The name its events carry: the step's, or its matrix combination's. */
  step: string;
  host: string;
  summary: StepSummary;
  /** What it exported, the values themselves. */
  exports: Record<string, string>;
}

/** The names events and summaries give a step: its own, or each matrix combination's. */
export function instanceNames(step: Step): string[] {
  return step.matrix ? step.matrix.instances.map((instance) => instance.name) : [step.name];
}

/** What the run did for each host of each combination of `step`; undefined where it never finished. */
function outcomesOf(step: Step, hosts: ReadonlyMap<string, HostProgress>): (HostProgress | undefined)[] {
  return instanceNames(step).flatMap((name) =>
    step.targets.map((host) => {
      const progress = hosts.get(hostKey(name, host));
      return progress?.summary ? progress : undefined;
    }),
  );
}

/** The first step, in file order, that did not succeed (failed, timed out, canceled or never ended). */
export function firstUnfinishedStep(
  workflow: Pick<Workflow, "steps">,
  hosts: ReadonlyMap<string, HostProgress>,
): string | undefined {
  for (const step of workflow.steps) {
    const outcomes = outcomesOf(step, hosts);
    if (outcomes.some((o) => o === undefined || !settled(o.summary?.status))) return step.name;
  }
  return undefined;
}

function settled(status: string | undefined): boolean {
  return status === "success" || status === "skipped";
}

/** `from` and every step after it (in file order), or, in a graph, every step that depends on it. */
export function downstreamOf(workflow: Pick<Workflow, "steps">, from: string): Set<string> {
  const index = workflow.steps.findIndex((step) => step.name === from);
  if (!isStepGraph(workflow)) return new Set(workflow.steps.slice(Math.max(0, index)).map((s) => s.name));
  const found = new Set([from]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const step of workflow.steps) {
      if (found.has(step.name)) continue;
      if ((step.depends ?? []).some((d) => found.has(d.step))) {
        found.add(step.name);
        grew = true;
      }
    }
  }
  return found;
}

/**
 * The steps a retry from `from` keeps, host by host: every step not downstream of `from` whose
 * every host succeeded, or was skipped while all it waited for is kept too (a step skipped because
 * an earlier one failed runs again with it).
 */
export function keptSteps(
  workflow: Pick<Workflow, "steps">,
  from: string,
  hosts: ReadonlyMap<string, HostProgress>,
): KeptStep[] {
  const graph = isStepGraph(workflow);
  const downstream = downstreamOf(workflow, from);
  const kept = new Set<string>();
  for (const step of workflow.steps) {
    if (!downstream.has(step.name) && outcomesOf(step, hosts).every((o) => o && settled(o.summary?.status)))
      kept.add(step.name);
  }
  // A skipped step is kept only while every step it waited for is.
  let dropped = true;
  while (dropped) {
    dropped = false;
    for (const [index, step] of workflow.steps.entries()) {
      if (!kept.has(step.name)) continue;
      if (!outcomesOf(step, hosts).some((o) => o?.summary?.status === "skipped")) continue;
      const before = graph
        ? (step.depends ?? []).map((d) => d.step)
        : workflow.steps.slice(0, index).map((s) => s.name);
      if (before.every((name) => kept.has(name))) continue;
      kept.delete(step.name);
      dropped = true;
    }
  }
  return workflow.steps
    .filter((step) => kept.has(step.name))
    .flatMap((step) =>
      instanceNames(step).flatMap((name) =>
        step.targets.map((host) => {
          const progress = hosts.get(hostKey(name, host)) as HostProgress & { summary: StepSummary };
          return { step: name, host, summary: progress.summary, exports: { ...progress.exports } };
        }),
      ),
    );
}

/** "did you mean" for a step name nobody has, or the step names there are. */
export function unknownStepHint(workflow: Pick<Workflow, "steps">, name: string): string {
  const names = workflow.steps.map((step) => step.name);
  const guess = didYouMean(name, names);
  return guess !== undefined
    ? `did you mean "${guess}"? Steps of this run: ${names.join(", ")}.`
    : `Steps of this run: ${names.join(", ")}.`;
}

/** The kept steps an edited workflow still has (by step, combination and host). */
export function keptStepsIn(workflow: Pick<Workflow, "steps">, kept: readonly KeptStep[]): KeptStep[] {
  const present = new Set(
    workflow.steps.flatMap((step) =>
      instanceNames(step).flatMap((name) => step.targets.map((h) => hostKey(name, h))),
    ),
  );
  return kept.filter((k) => present.has(hostKey(k.step, k.host)));
}

/**
 * Problems (at the step's line:column) for steps of an edited workflow that will run on a retry and
 * read `${NAME}` that no kept or running step exports. Only names some step exports count: a
 * `${HOME}` is the runner's to give.
 */
export function missingExports(
  edited: Workflow,
  kept: readonly KeptStep[],
  given: Record<string, string>,
  original: { steps: Step[]; exported: Record<string, string> },
  file: string,
): Diagnostic[] {
  const keptNames = new Set(kept.map((k) => k.step));
  const running = edited.steps.filter((step) => !instanceNames(step).every((name) => keptNames.has(name)));
  const exportNames = new Set([
    ...Object.keys(original.exported),
    ...[...original.steps, ...edited.steps].flatMap((step) => scriptExports(step.script)),
  ]);
  const keptExports = Object.assign({}, ...kept.map((k) => k.exports)) as Record<string, string>;
  const problems = undefinedVariables({ ...edited, steps: running }, { ...given, ...keptExports }, {});
  return problems
    .filter((problem) => exportNames.has(problem.name))
    .map((problem) => {
      const by = original.steps.find((step) => scriptExports(step.script).includes(problem.name));
      return {
        file,
        line: problem.line,
        col: problem.col,
        message: `step "${problem.step}" needs \${${problem.name}}, an export no kept step made and no step that runs makes`,
        hint: by
          ? `step "${by.name}" exported it in the run retried: export it again from a step that runs, keep that step (retry from a later step), or give it with --var ${problem.name}=VALUE`
          : `export it from a step that runs, or give it with --var ${problem.name}=VALUE`,
      };
    });
}

/** What a retry carries into its engine: the run it retries, and the steps it keeps of it. */
export interface KeptFrom {
  /** The run retried. */
  run: string;
  steps: KeptStep[];
}

/**
 * Lays the kept steps into a run's prior progress, read back as a resumed run's finished steps. Each
 * is said once (`step.finished` with `kept_from`), not again when stored (a retry carried on by
 * another replica). Answers how many ends they take.
 */
export function seedKeptSteps(
  workflow: Pick<Workflow, "steps">,
  prior: { hosts: Map<string, HostProgress>; exports: Record<string, string>[] },
  kept: KeptFrom,
  emit: (event: EventInput) => void,
): number {
  const shown = new Set(workflow.steps.flatMap(instanceNames));
  let end = 0;
  for (const step of kept.steps) {
    end += 1;
    const key = hostKey(step.step, step.host);
    if (prior.hosts.get(key)?.summary) continue;
    prior.hosts.set(key, {
      summary: step.summary,
      exports: step.exports,
      attempts: step.summary.attempts,
      inFlight: false,
      endSeq: end,
    });
    prior.exports.push(step.exports);
    if (!shown.has(step.step)) continue;
    if (Object.keys(step.exports).length > 0)
      emit({ type: "vars.exported", step: step.step, host: step.host, vars: step.exports });
    const { name: _name, ...summary } = step.summary;
    emit({
      type: "step.finished",
      step: step.step,
      ...summary,
      host: step.host,
      duration_ms: summary.duration_ms ?? 0,
      kept_from: kept.run,
    });
  }
  return end;
}
