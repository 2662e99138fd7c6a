/**
 * One step of a run, whatever runs it around: `when`, each matrix combination (or the step
 * itself) on all its targets, a slot of `max_parallel` for each, and the exports merged.
 */
import { errorInfo } from "../core/errors.js";
import type { ErrorInfo, EventInput, RunStatus, StepStatus, StepSummary } from "../core/events.js";
import { evaluateExpression } from "./expression.js";
import type { MatrixInstance, Step } from "./model.js";
import type { HostProgress } from "./resume.js";

/** What one host's attempts at one step came to. */
export interface HostOutcome {
  summary: StepSummary;
  exports: Record<string, string>;
}

/** How a step ended on one host, as its `step.finished` says. */
export interface StepEnd {
  status: StepStatus;
  attempts: number;
  duration_ms: number;
  /** A command's exit code; null for a step of another kind (an agent, a call, an approval). */
  exit_code?: number | null;
  memory_peak_bytes?: number;
  cpu_ms?: number;
  output_path?: string;
  error?: ErrorInfo;
}

/**
 * Ends a step on one host, whatever its kind: its exports (`vars.exported`, when it has any),
 * then `step.finished`; returns what the run keeps of it.
 */
export function finishStep(
  emit: (event: EventInput) => void,
  step: string,
  host: string,
  end: StepEnd,
  exports: Record<string, string>,
): HostOutcome {
  const measured = {
    ...(end.memory_peak_bytes !== undefined ? { memory_peak_bytes: end.memory_peak_bytes } : {}),
    ...(end.cpu_ms !== undefined ? { cpu_ms: end.cpu_ms } : {}),
  };
  const summary: StepSummary = {
    name: step,
    host,
    status: end.status,
    exit_code: end.exit_code ?? null,
    attempts: end.attempts,
    duration_ms: end.duration_ms,
    ...measured,
    ...(end.error ? { error: end.error } : {}),
  };
  if (Object.keys(exports).length > 0) emit({ type: "vars.exported", step, host, vars: exports });
  emit({
    type: "step.finished",
    step,
    host,
    status: end.status,
    exit_code: summary.exit_code,
    attempts: end.attempts,
    duration_ms: end.duration_ms,
    ...measured,
    ...(end.output_path !== undefined ? { output_path: end.output_path } : {}),
    ...(end.error ? { error: end.error } : {}),
  });
  return { summary, exports };
}

/** The run's end a failing step decides: its status and the error `run.finished` carries. */
export interface RunFailure {
  status: RunStatus;
  error: ErrorInfo;
}

/** One combination of a step (or the step itself), as it ran. */
export interface InstanceRun {
  /** The step as it ran: named for its combination. */
  step: Step;
  /** The variables it ran with, its combination's among them. */
  vars: Record<string, string>;
  exports: Record<string, string>;
  /** The targets where it succeeded: where its rollback would run. */
  succeeded: string[];
  /** Where it sits among the ends of the run's steps (larger is later). */
  endedAt: number;
}

/** What a step came to on all its hosts and combinations. */
export interface StepResult {
  step: Step;
  summaries: StepSummary[];
  /** Its exports, merged over hosts and combinations; none when they disagreed. */
  exports: Record<string, string>;
  /** Set when some host failed, timed out or was canceled: what the run would end with. */
  failure?: RunFailure;
  /** The step never ran: `when` was false, a dependency did not succeed, or the run ended. */
  notRun?: { status: StepStatus; blockedBy?: string };
  instances: InstanceRun[];
  endedAt: number;
}

/** What running a step needs from the engine around it. */
export interface StepContext {
  signal: AbortSignal;
  pool: StepPool;
  emit: (event: EventInput) => void;
  /** Names `when` may read besides variables. */
  expressionEnv: Record<string, string | undefined> | undefined;
  /** Runs (or, resumed, reads back) one step on one host with these variables. */
  runOnHost: (
    step: Step,
    host: string,
    vars: Record<string, string>,
    signal: AbortSignal,
  ) => Promise<HostOutcome>;
  /** What the run did for a step on a host before a restart. */
  prior: (step: string, host: string) => HostProgress | undefined;
  /** The next end, in order: steps resumed keep the place their events gave them. */
  nextEnd: () => number;
}

/**
 * At most `max_parallel` steps at once: each combination takes a slot while it runs (on all its
 * targets). Slots go in request order, so ready steps start in file order.
 */
export class StepPool {
  private readonly waiting: { grant: () => void; signal: AbortSignal; abandon: () => void }[] = [];
  /** Signals with a listener already: one each, however many steps wait on it. */
  private readonly watched = new WeakSet<AbortSignal>();

  constructor(private free: number) {}

  /** Resolves true with a slot, or false when `signal` aborts first (no slot is then held). */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve(true);
    }
    if (!this.watched.has(signal)) {
      this.watched.add(signal);
      signal.addEventListener("abort", () => this.abandon(signal), { once: true });
    }
    return new Promise((resolve) => {
      this.waiting.push({ grant: () => resolve(true), signal, abandon: () => resolve(false) });
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.free += 1;
  }

  private abandon(signal: AbortSignal): void {
    for (const waiter of this.waiting.filter((w) => w.signal === signal)) {
      this.waiting.splice(this.waiting.indexOf(waiter), 1);
      waiter.abandon();
    }
  }
}

/** Runs a step with `vars`: each combination of its matrix, or the step itself once. */
export async function runStep(
  step: Step,
  vars: Record<string, string>,
  ctx: StepContext,
): Promise<StepResult> {
  const instances: MatrixInstance[] = step.matrix?.instances ?? [{ name: step.name, vars: {} }];
  // fail_fast: the first failing combination cancels the others, running or not yet started.
  const failFast = step.matrix?.failFast ? new AbortController() : undefined;
  const signal = failFast ? AbortSignal.any([ctx.signal, failFast.signal]) : ctx.signal;
  let firstFailure: string | undefined;
  const runs = await Promise.all(
    instances.map(async (instance) => {
      const named = instance.name === step.name ? step : { ...step, name: instance.name };
      const instanceVars = { ...vars, ...instance.vars };
      const outcomes = await runInstance(named, instanceVars, signal, ctx, {
        failedFirst: () => firstFailure,
        // Before its slot is free: no combination waiting for it may start after a failure.
        ended: (outcomes) => {
          if (!failFast || !outcomes.some((o) => failing(o.summary.status))) return;
          firstFailure ??= named.name;
          failFast.abort();
        },
      });
      const endedAt = endOf(named, outcomes, ctx) ?? ctx.nextEnd();
      return { named, instanceVars, outcomes, endedAt };
    }),
  );

  const summaries = runs.flatMap((run) => run.outcomes.map((o) => o.summary));
  const allSkipped = summaries.every((s) => s.status === "skipped" && s.attempts === 0);
  const result: StepResult = {
    step,
    summaries,
    exports: {},
    instances: runs.map((run) => ({
      step: run.named,
      vars: run.instanceVars,
      exports: mergeOutcomes(run.outcomes),
      succeeded: run.outcomes.filter((o) => o.summary.status === "success").map((o) => o.summary.host),
      endedAt: run.endedAt,
    })),
    endedAt: 0,
    ...(allSkipped ? { notRun: { status: "skipped" as const } } : {}),
  };
  result.endedAt = Math.max(...result.instances.map((i) => i.endedAt));
  const conflict = mergeExports(step, runs, result);
  if (conflict) {
    ctx.emit({ type: "notice", level: "error", message: conflict.message, step: step.name });
    for (const summary of summaries) {
      summary.status = "failed";
      summary.error = conflict;
    }
  }
  const failed =
    summaries.find((s) => s.status === "failed" || s.status === "timeout") ??
    summaries.find((s) => s.status !== "success" && s.status !== "skipped");
  if (failed) result.failure = failureOf(failed);
  return result;
}

async function runInstance(
  step: Step,
  vars: Record<string, string>,
  signal: AbortSignal,
  ctx: StepContext,
  fail: { failedFirst: () => string | undefined; ended: (outcomes: HostOutcome[]) => void },
): Promise<HostOutcome[]> {
  const priors = step.targets.map((host) => ctx.prior(step.name, host)?.summary);
  if (
    step.when &&
    priors.some((s) => s === undefined) &&
    !evaluateExpression(step.when.expr, { ...ctx.expressionEnv, ...vars })
  ) {
    return step.targets.map((host) => skipped(ctx, step, host, `when: ${step.when?.source}`, "skipped"));
  }
  if (!(await ctx.pool.acquire(signal))) return canceledBeforeStart(step, signal, ctx, fail.failedFirst());
  try {
    // Canceled while it waited for its slot: it never started.
    if (signal.aborted) return canceledBeforeStart(step, signal, ctx, fail.failedFirst());
    const outcomes = await Promise.all(step.targets.map((host) => ctx.runOnHost(step, host, vars, signal)));
    fail.ended(outcomes);
    return outcomes;
  } finally {
    ctx.pool.release();
  }
}

/**
 * A combination that never started: canceled with the run (no event, as steps after a failure
 * have none), or by `fail_fast` (a `step.finished` naming the combination that failed).
 */
function canceledBeforeStart(
  step: Step,
  signal: AbortSignal,
  ctx: StepContext,
  failedFirst: string | undefined,
): HostOutcome[] {
  if (ctx.signal.aborted || !signal.aborted) {
    return step.targets.map((host) => ({ summary: notRunSummary(step.name, host, "canceled"), exports: {} }));
  }
  return step.targets.map((host) =>
    skipped(ctx, step, host, `fail_fast: "${failedFirst ?? step.name}" failed`, "canceled"),
  );
}

/** Emits a step that did not run on a host as finished (once: not again after a restart). */
export function skipped(
  ctx: Pick<StepContext, "emit" | "prior">,
  step: Pick<Step, "name">,
  host: string,
  reason: string,
  status: "skipped" | "canceled",
  error?: ErrorInfo,
): HostOutcome {
  const summary: StepSummary = {
    ...notRunSummary(step.name, host, status),
    ...(error ? { status: "failed" as const, error } : {}),
  };
  if (!ctx.prior(step.name, host)?.summary) {
    ctx.emit({
      type: "step.finished",
      step: step.name,
      host,
      status: summary.status,
      exit_code: null,
      attempts: 0,
      duration_ms: 0,
      reason,
      ...(error ? { error } : {}),
    });
  }
  return { summary, exports: {} };
}

export function notRunSummary(name: string, host: string, status: StepStatus): StepSummary {
  return { name, host, status, exit_code: null, attempts: 0 };
}

/** A step that never runs, with a summary per combination and host. */
export function notRunResult(
  step: Step,
  status: StepStatus,
  endedAt: number,
  blockedBy?: string,
): StepResult {
  const instances = step.matrix?.instances ?? [{ name: step.name, vars: {} }];
  return {
    step,
    summaries: instances.flatMap((i) => step.targets.map((host) => notRunSummary(i.name, host, status))),
    exports: {},
    notRun: { status, ...(blockedBy !== undefined ? { blockedBy } : {}) },
    instances: [],
    endedAt,
  };
}

function failing(status: StepStatus): boolean {
  return status === "failed" || status === "timeout";
}

/** The run's failure a failing host makes, in the words `run.finished` has always used. */
export function failureOf(summary: StepSummary): RunFailure {
  const error = summary.error ?? errorInfo("STEP_FAILED", `step "${summary.name}" failed`);
  return {
    status: runStatusFor(summary),
    error: { ...error, message: `step "${summary.name}" on ${summary.host}: ${error.message}` },
  };
}

/** A run ends `interrupted` when its work was lost with a runner, `timeout` when a step timed out. */
function runStatusFor(summary: StepSummary): RunStatus {
  if (summary.error?.code === "RUNNER_LOST") return "interrupted";
  return summary.status === "timeout" ? "timeout" : "failed";
}

/** Where a resumed combination ended before the restart: its last host's `step.finished`. */
function endOf(step: Step, outcomes: HostOutcome[], ctx: StepContext): number | undefined {
  const seqs = outcomes.map((o) => ctx.prior(step.name, o.summary.host)?.endSeq);
  if (seqs.some((seq) => seq === undefined)) return undefined;
  return Math.max(...(seqs as number[]));
}

function mergeOutcomes(outcomes: HostOutcome[]): Record<string, string> {
  return Object.assign({}, ...outcomes.map((o) => o.exports));
}

/**
 * Sets the step's exports from every host of every combination. Two exporting different values for
 * one name is an error: runyard does not guess which one later steps should see.
 */
function mergeExports(
  step: Step,
  runs: { named: Step; outcomes: HostOutcome[] }[],
  result: StepResult,
): ErrorInfo | undefined {
  const seen = new Map<string, { from: string; value: string }>();
  for (const { named, outcomes } of runs) {
    for (const { summary, exports } of outcomes) {
      for (const [name, value] of Object.entries(exports)) {
        const first = seen.get(name);
        if (first && first.value !== value) {
          const here = step.matrix ? `"${named.name}" on ${summary.host}` : summary.host;
          return errorInfo(
            "EXPORT_CONFLICT",
            `step "${step.name}": ${step.matrix ? "combinations" : "hosts"} ${first.from} and ${here} exported different values for ${name}`,
            step.matrix
              ? "Combinations of one matrix step exported different values for the same name; export names that carry the combination instead."
              : undefined,
          );
        }
        seen.set(name, { from: step.matrix ? `"${named.name}" on ${summary.host}` : summary.host, value });
      }
    }
  }
  for (const [name, { value }] of seen) result.exports[name] = value;
  return undefined;
}
