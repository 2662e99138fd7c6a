import { setTimeout as delay } from "node:timers/promises";
import { errorInfo, toErrorInfo } from "../core/errors.js";
import type { ErrorInfo, EventInput, RunEvent, RunStatus, StepStatus, StepSummary } from "../core/events.js";
import { type SecretMasker, withoutSecretNames } from "../core/masking.js";
import type { StepAttemptRequest, StepAttemptResult, StepRunner } from "../core/step-attempt.js";
import { type ApprovalGate, awaitApproval } from "./approval.js";
import { evaluateExpression } from "./expression.js";
import { execAction, type HostSpec, type Step, type Workflow } from "./model.js";
import { type HostProgress, hostKey, priorProgress } from "./resume.js";
import { secretNamesOf, secretValues, workflowMasker } from "./secrets.js";

/** Everything the engine needs; entry points build it. */
export interface EngineOptions {
  workflow: Workflow;
  runId: string;
  /** `--var K=V` and API vars; laid over the workflow's `vars:`. */
  vars?: Record<string, string>;
  /** Extra names `when` expressions may read besides variables (the caller's environment). */
  expressionEnv?: Record<string, string | undefined>;
  /** Values to mask everywhere, besides secret-named env and variables. */
  secrets?: string[];
  /** Receives every event of the run, already masked, in order. */
  emit: (event: EventInput) => void;
  /** Where each host's steps run. */
  runnerFor: (host: string, spec: HostSpec) => StepRunner;
  /** Aborting cancels the run: running steps are stopped, the run ends `canceled`. */
  signal?: AbortSignal;
  /**
   * Events this run already has (a server restarted mid-run): finished steps are not run
   * again, and an attempt that was started goes on without a second `step.started`.
   */
  resume?: RunEvent[];
  /**
   * The real values steps exported before a restart, by `hostKey(step, host)`: the events
   * only hold them masked. Where one is missing, the value in the events is used.
   */
  resumeExports?: Map<string, Record<string, string>>;
  /** Emit `run.started` at once (default). The server emits it when a runner takes the work. */
  announceStart?: boolean;
  /**
   * Where approval steps wait for their answer (the server's store). Without it an approval
   * step fails with APPROVAL_NEEDS_SERVER: nobody could answer it.
   */
  approvals?: ApprovalGate;
}

export interface RunOutcome {
  status: RunStatus;
  error?: ErrorInfo;
  vars: Record<string, string>;
  steps: StepSummary[];
  durationMs: number;
}

export interface HostOutcome {
  summary: StepSummary;
  exports: Record<string, string>;
}

/**
 * Runs a workflow's steps in order; each step on all its targets in parallel. Steps are
 * retried with exponential backoff, skipped by `when`, checked by `expect_vars`; variables
 * exported by one step reach later ones as environment variables, never as shell text.
 */
export async function runWorkflow(options: EngineOptions): Promise<RunOutcome> {
  const { workflow } = options;
  const signal = options.signal ?? new AbortController().signal;
  const started = Date.now();
  // `vars` holds the real values: they reach steps as env. Everything emitted is masked.
  const vars: Record<string, string> = { ...workflow.vars, ...options.vars };
  const secretNames = secretNamesOf(workflow);
  const masker = workflowMasker(workflow, vars, options.secrets ?? []);
  const emit = (event: EventInput): void => options.emit(masker.maskDeep(event));
  const prior = priorProgress(options.resume ?? [], options.resumeExports);
  for (const exported of prior.exports) Object.assign(vars, exported);
  masker.add(secretValues(vars, secretNames));

  if (options.announceStart !== false && !prior.started) emit({ type: "run.started", name: workflow.name });
  const summaries: StepSummary[] = [];
  let failure: { status: RunStatus; error: ErrorInfo } | undefined;

  for (const step of workflow.steps) {
    if (failure || signal.aborted) {
      const status: StepStatus = signal.aborted ? "canceled" : "skipped";
      for (const host of step.targets) summaries.push(notRun(step, host, status));
      continue;
    }
    const allPrior = step.targets.map((host) => prior.hosts.get(hostKey(step.name, host))?.summary);
    if (
      step.when &&
      allPrior.some((s) => s === undefined) &&
      !evaluateExpression(step.when.expr, { ...options.expressionEnv, ...vars })
    ) {
      for (const host of step.targets) {
        emitSkipped(emit, step, host, `when: ${step.when.source}`);
        summaries.push(notRun(step, host, "skipped"));
      }
      continue;
    }

    const outcomes = await Promise.all(
      step.targets.map((host) =>
        runOnHost(step, host, {
          options,
          vars,
          masker,
          secretNames,
          emit,
          signal,
          prior: prior.hosts.get(hostKey(step.name, host)),
        }),
      ),
    );
    const conflict = mergeExports(step, outcomes, vars);
    if (conflict) {
      emit({ type: "notice", level: "error", message: conflict.message, step: step.name });
      for (const outcome of outcomes) {
        outcome.summary.status = "failed";
        outcome.summary.error = conflict;
      }
    }
    masker.add(secretValues(vars, secretNames));
    summaries.push(...outcomes.map((o) => o.summary));

    const failed = outcomes.find((o) => o.summary.status !== "success" && o.summary.status !== "skipped");
    if (signal.aborted) {
      failure = { status: "canceled", error: errorInfo("CANCELED", "the run was canceled") };
    } else if (failed && !step.continueOnError) {
      const error = failed.summary.error ?? errorInfo("STEP_FAILED", `step "${step.name}" failed`);
      failure = {
        status: runStatusFor(failed.summary),
        error: {
          ...error,
          message: `step "${step.name}" on ${failed.summary.host}: ${error.message}`,
        },
      };
    }
  }

  if (!failure && signal.aborted) {
    failure = { status: "canceled", error: errorInfo("CANCELED", "the run was canceled") };
  }
  const outcome: RunOutcome = {
    status: failure?.status ?? "success",
    ...(failure ? { error: failure.error } : {}),
    vars: masker.maskDeep(vars),
    steps: summaries,
    durationMs: Date.now() - started,
  };
  emit({
    type: "run.finished",
    status: outcome.status,
    ...(outcome.error ? { error: outcome.error } : {}),
    duration_ms: outcome.durationMs,
    vars: outcome.vars,
    steps: outcome.steps,
  });
  return outcome;
}

export interface HostContext {
  options: EngineOptions;
  vars: Record<string, string>;
  masker: SecretMasker;
  /** Names whose values are secrets (`*_TOKEN` and the like are always). */
  secretNames: ReadonlySet<string>;
  emit: (event: EventInput) => void;
  signal: AbortSignal;
  prior: HostProgress | undefined;
}

async function runOnHost(step: Step, host: string, ctx: HostContext): Promise<HostOutcome> {
  if (ctx.prior?.summary) return { summary: ctx.prior.summary, exports: ctx.prior.exports };
  if (step.approval) return awaitApproval(step, step.approval, host, ctx);
  const spec = ctx.options.workflow.hosts[host] ?? { kind: "local" };
  const runner = ctx.options.runnerFor(host, spec);
  const maxAttempts = step.retryCount + 1;
  let result: StepAttemptResult | undefined;
  let error: ErrorInfo | undefined;
  let attempt = ctx.prior ? ctx.prior.attempts - (ctx.prior.inFlight ? 1 : 0) : 0;
  let reattach = ctx.prior?.inFlight ?? false;
  let elapsed = 0;

  while (attempt < maxAttempts) {
    attempt += 1;
    // A resumed attempt said step.started before the restart.
    let announced = reattach;
    reattach = false;
    const thisAttempt = attempt;
    const announce = (): void => {
      if (announced) return;
      announced = true;
      ctx.emit({ type: "step.started", step: step.name, host, attempt: thisAttempt });
    };
    // An attempt that waits for a runner starts when one takes it up: never before its run has.
    if (!runner.startsLater) announce();
    const request = attemptRequest(step, host, attempt, ctx, spec);
    try {
      result = await runner.runAttempt(request, {
        signal: ctx.signal,
        onOutput: (stream, data) => {
          announce();
          ctx.emit({ type: "step.output", step: step.name, host, stream, data });
        },
        started: announce,
      });
    } catch (thrown) {
      result = undefined;
      error = toErrorInfo(thrown);
    }
    if (result) {
      elapsed += result.duration_ms;
      // Before anything about the attempt is emitted, so its secret exports never show.
      const exported = result.exports;
      ctx.masker.add(secretValues(exported, ctx.secretNames));
      ctx.masker.add(result.secret_exports.map((name) => exported[name] ?? ""));
      // A runner drops these itself; an older runner or agent-server may not.
      const named = withoutSecretNames(exported, ctx.masker);
      result = { ...result, exports: named.kept, warnings: [...result.warnings, ...named.refused] };
      for (const warning of result.warnings) {
        ctx.emit({ type: "notice", level: "warn", message: warning, step: step.name, host });
      }
      error = result.error;
      if (result.status === "success") {
        const missing = step.expectVars.filter((name) => !(name in { ...ctx.vars, ...result?.exports }));
        if (missing.length === 0) break;
        error = errorInfo(
          "EXPECT_VARS_MISSING",
          `expected variable${missing.length > 1 ? "s" : ""} ${missing.join(", ")} not exported`,
        );
      }
      if (result.status === "canceled") break;
    }
    if (ctx.signal.aborted || attempt >= maxAttempts) break;
    const delayMs = Math.round(step.retryDelaySeconds * 1000 * 2 ** (attempt - 1));
    ctx.emit({
      type: "step.retrying",
      step: step.name,
      host,
      attempt,
      exit_code: result?.exit_code ?? null,
      delay_ms: delayMs,
    });
    await delay(delayMs, undefined, { signal: ctx.signal }).catch(() => undefined);
    if (ctx.signal.aborted) break;
  }

  const status = hostStatus(result, error, ctx.signal);
  const summary: StepSummary = {
    name: step.name,
    host,
    status,
    exit_code: result?.exit_code ?? null,
    attempts: attempt,
    duration_ms: elapsed,
    memory_peak_bytes: result?.memory_peak_bytes ?? 0,
    cpu_ms: result?.cpu_ms ?? 0,
    ...(status === "success" || !error ? {} : { error }),
  };
  const exports = result?.exports ?? {};
  if (Object.keys(exports).length > 0) {
    ctx.emit({ type: "vars.exported", step: step.name, host, vars: exports });
  }
  ctx.emit({
    type: "step.finished",
    step: step.name,
    host,
    status,
    exit_code: summary.exit_code,
    attempts: attempt,
    duration_ms: elapsed,
    memory_peak_bytes: summary.memory_peak_bytes,
    cpu_ms: summary.cpu_ms,
    ...(result?.output_files[0] ? { output_path: result.output_files[0] } : {}),
    ...(summary.error ? { error: summary.error } : {}),
  });
  return { summary, exports };
}

/** A run ends `interrupted` when its work was lost with a runner, `timeout` when a step timed out. */
function runStatusFor(summary: StepSummary): RunStatus {
  if (summary.error?.code === "RUNNER_LOST") return "interrupted";
  return summary.status === "timeout" ? "timeout" : "failed";
}

function hostStatus(
  result: StepAttemptResult | undefined,
  error: ErrorInfo | undefined,
  signal: AbortSignal,
): StepStatus {
  if (signal.aborted) return "canceled";
  if (!result) return "failed";
  if (result.status === "success" && error) return "failed";
  return result.status;
}

function attemptRequest(
  step: Step,
  host: string,
  attempt: number,
  ctx: HostContext,
  spec: HostSpec,
): StepAttemptRequest {
  const { workflow, runId } = ctx.options;
  return {
    run_id: runId,
    step: step.name,
    host,
    attempt,
    action: execAction(step),
    script: step.script,
    shell: step.shell,
    // Variables travel as environment variables; the shell expands ${VAR} itself.
    env: { ...workflow.env, ...ctx.vars, ...step.env },
    ...(step.cwd ? { cwd: step.cwd } : {}),
    ...(step.timeoutSeconds ? { timeout_ms: Math.round(step.timeoutSeconds * 1000) } : {}),
    export_vars: step.exportVars,
    ...(step.maxOutputBytes !== undefined ? { max_output_bytes: step.maxOutputBytes } : {}),
    ...(step.outputPath ? { output_path: step.outputPath } : {}),
    secrets: ctx.masker.values(),
    secret_names: workflow.secrets,
    // The container travels with each attempt, so whichever runner takes it knows to use Docker.
    ...(spec.kind !== "direct" && spec.container ? { container: spec.container } : {}),
  };
}

/** Applies a step's exports to the variables; two hosts disagreeing on a name is an error. */
function mergeExports(
  step: Step,
  outcomes: HostOutcome[],
  vars: Record<string, string>,
): ErrorInfo | undefined {
  const seen = new Map<string, { host: string; value: string }>();
  for (const { summary, exports } of outcomes) {
    for (const [name, value] of Object.entries(exports)) {
      const first = seen.get(name);
      if (first && first.value !== value) {
        return errorInfo(
          "EXPORT_CONFLICT",
          `step "${step.name}": hosts ${first.host} and ${summary.host} exported different values for ${name}`,
        );
      }
      seen.set(name, { host: summary.host, value });
    }
  }
  for (const [name, { value }] of seen) vars[name] = value;
  return undefined;
}

function emitSkipped(emit: (event: EventInput) => void, step: Step, host: string, reason: string): void {
  emit({
    type: "step.finished",
    step: step.name,
    host,
    status: "skipped",
    exit_code: null,
    attempts: 0,
    duration_ms: 0,
    reason,
  });
}

function notRun(step: Step, host: string, status: StepStatus): StepSummary {
  return { name: step.name, host, status, exit_code: null, attempts: 0 };
}
