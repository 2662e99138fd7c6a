import { errorInfo, RunyardError, toErrorInfo } from "../core/errors.js";
import type { ErrorInfo, EventInput, RunEvent, RunStatus, StepStatus, StepSummary } from "../core/events.js";
import { type SecretMasker, withoutSecretNames } from "../core/masking.js";
import { withoutSettingNames } from "../core/setting-names.js";
import type { StepAttemptRequest, StepAttemptResult, StepRunner } from "../core/step-attempt.js";
import { type AgentStepRunner, runAgentStep } from "./agent-step.js";
import { type ApprovalGate, awaitApproval } from "./approval.js";
import { runCall, type WorkflowCaller } from "./call.js";
import { pause } from "./halt.js";
import { runHandlers } from "./handlers.js";
import {
  defaultMaxParallel,
  execAction,
  type HostSpec,
  isStepGraph,
  type Step,
  type Workflow,
} from "./model.js";
import { type HostProgress, hostKey, priorProgress } from "./resume.js";
import { type KeptFrom, seedKeptSteps } from "./retry-plan.js";
import { failureReason, retryPlan, retryPolicyOf } from "./retry-policy.js";
import { runRollbacks } from "./rollback.js";
import { runDeadline } from "./run-deadline.js";
import { secretNamesOf, secretValues, workflowMasker } from "./secrets.js";
import { runGraph } from "./step-graph.js";
import {
  finishStep,
  type HostOutcome,
  notRunResult,
  runStep,
  type StepContext,
  StepPool,
  type StepResult,
} from "./step-run.js";
import { fillVariables } from "./templates.js";

/** How often an attempt the server could not hand out or wait for (its database away) is asked for again. */
const storeRetryMs = 1000;

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
   * Aborted when the server stops (halt.ts): the engine is left where it is, its run's timeout
   * and its waits between attempts hold no timer, and the run goes on at the next start.
   */
  halt?: AbortSignal;
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
  /** Where approval steps await answers (the server's store); else they fail APPROVAL_NEEDS_SERVER. */
  approvals?: ApprovalGate;
  /** `false` (`--no-rollback`): a failed run does not run its steps' rollbacks. */
  rollback?: boolean;
  /** A retry: the steps it keeps of the run it retries, which do not run again. */
  kept?: KeptFrom;
  /** Where `workflow.call` steps start their child runs (the server); else they fail CALL_NEEDS_SERVER. */
  calls?: WorkflowCaller;
  /** Where `agent.run` steps run their turns. Without it an agent step fails with AGENT_STEP_UNAVAILABLE. */
  agents?: AgentStepRunner;
}

export interface RunOutcome {
  status: RunStatus;
  error?: ErrorInfo;
  vars: Record<string, string>;
  steps: StepSummary[];
  durationMs: number;
  /** A failed run's rollbacks all succeeded. */
  rolledBack?: true;
  /** The first rollback step of a failed run that did not succeed. */
  rollbackFailed?: string;
  /** The workflow's `outputs:`, from the run's final variables (masked). */
  outputs?: Record<string, string>;
  /** The `on:` handler steps that did not succeed; the status stands. */
  handlersFailed?: string[];
}

/**
 * Runs a workflow's steps: in file order, or as a graph when a step has `depends`; each step on
 * all its targets in parallel, each matrix combination of it too, `max_parallel` at most. Steps
 * are retried with exponential backoff, skipped by `when`, checked by `expect_vars`; variables
 * exported by one step reach later ones (in a graph: the steps that depend on it) as environment
 * variables, never as shell text. A run that fails runs its steps' rollbacks.
 */
export async function runWorkflow(options: EngineOptions): Promise<RunOutcome> {
  const { workflow } = options;
  const started = Date.now();
  // The run's own `timeout:` aborts what runs as a cancel does; the run then ends `timeout`.
  const deadline = runDeadline(workflow, options.resume, options.signal, started);
  // Its server stops: the timeout counts on from the run's start after the next one.
  const halt = options.halt;
  const stopTimer = (): void => deadline.clear();
  halt?.addEventListener("abort", stopTimer, { once: true });
  try {
    return await runWithin(options, deadline.signal, started, () => deadline.passed);
  } finally {
    halt?.removeEventListener("abort", stopTimer);
    deadline.clear();
  }
}

async function runWithin(
  options: EngineOptions,
  signal: AbortSignal,
  started: number,
  timedOut: () => string | undefined,
): Promise<RunOutcome> {
  const { workflow } = options;
  const graph = isStepGraph(workflow);
  // `vars` holds the real values: they reach steps as env. Everything emitted is masked.
  const vars: Record<string, string> = { ...workflow.vars, ...options.vars };
  const base = { ...vars };
  const secretNames = secretNamesOf(workflow);
  const masker = workflowMasker(workflow, vars, options.secrets ?? []);
  const emit = (event: EventInput): void => options.emit(masker.maskDeep(event));
  const prior = priorProgress(options.resume ?? [], options.resumeExports);
  const keptEvents: EventInput[] = [];
  const keptEnds = options.kept ? seedKeptSteps(workflow, prior, options.kept, (e) => keptEvents.push(e)) : 0;
  for (const exported of prior.exports) {
    masker.add(secretValues(exported, secretNames));
    // In a graph a step's exports reach its dependents only: they come back with its result.
    if (!graph) Object.assign(vars, exported);
  }
  masker.add(secretValues(vars, secretNames));

  if (options.announceStart !== false && !prior.started) emit({ type: "run.started", name: workflow.name });
  for (const event of keptEvents) emit(event);
  let lastEnd = Math.max(options.resume?.at(-1)?.seq ?? 0, keptEnds);
  const ctx: StepContext = {
    signal,
    pool: new StepPool(workflow.maxParallel ?? defaultMaxParallel),
    emit,
    expressionEnv: options.expressionEnv,
    runOnHost: (step, host, stepVars, hostSignal) =>
      runOnHost(step, host, {
        options,
        vars: stepVars,
        masker,
        secretNames,
        emit,
        signal: hostSignal,
        prior: prior.hosts.get(hostKey(step.name, host)),
      }),
    prior: (step, host) => prior.hosts.get(hostKey(step, host)),
    nextEnd: () => ++lastEnd,
  };

  const results = graph
    ? await runGraph(workflow.steps, base, ctx)
    : await runInOrder(workflow.steps, vars, ctx);
  if (graph) {
    for (const result of [...results].sort((a, b) => a.endedAt - b.endedAt))
      Object.assign(vars, result.exports);
  }
  const summaries = results.flatMap((result) => result.summaries);
  // The run's failure is the step that failed first; continue_on_error steps never fail it.
  const failedFirst = results
    .filter((result) => result.failure && !result.step.continueOnError)
    .sort((a, b) => a.endedAt - b.endedAt)[0];
  let failure = failedFirst?.failure;
  const passed = timedOut();
  if (passed) failure = { status: "timeout", error: errorInfo("RUN_TIMEOUT", passed) };
  else if (signal.aborted)
    failure = { status: "canceled", error: errorInfo("CANCELED", "the run was canceled") };

  // A canceled run is not rolled back: whoever canceled it decides what to undo. Nor is a run
  // past its timeout: its time is up, rollbacks included.
  const rollback =
    failure && failure.status !== "canceled" && !passed && options.rollback !== false
      ? await runRollbacks(results, ctx)
      : undefined;
  if (rollback) summaries.push(...rollback.summaries);
  const status = failure?.status ?? "success";
  const handled = workflow.handlers
    ? await runHandlers(
        workflow.handlers,
        { status, failedStep: failure && status !== "canceled" ? failedFirst?.step.name : undefined },
        vars,
        ctx,
      )
    : undefined;
  if (handled) summaries.push(...handled.summaries);
  for (const name of handled?.failed ?? []) {
    emit({
      type: "notice",
      level: "error",
      message: `handler "${name}" did not succeed; the run's status (${status}) stands`,
      step: name,
    });
  }
  const outputs =
    workflow.outputs &&
    Object.fromEntries(
      Object.entries(workflow.outputs).map(([name, text]) => [name, fillVariables(text, vars, "")]),
    );
  const outcome: RunOutcome = {
    status,
    ...(failure ? { error: failure.error } : {}),
    vars: masker.maskDeep(vars),
    steps: summaries,
    durationMs: Date.now() - started,
    ...(rollback ? (rollback.failed ? { rollbackFailed: rollback.failed } : { rolledBack: true }) : {}),
    ...(outputs ? { outputs: masker.maskDeep(outputs) } : {}),
    ...(handled && handled.failed.length > 0 ? { handlersFailed: handled.failed } : {}),
  };
  emit({
    type: "run.finished",
    status: outcome.status,
    ...(outcome.error ? { error: outcome.error } : {}),
    duration_ms: outcome.durationMs,
    vars: outcome.vars,
    steps: outcome.steps,
    ...(outcome.rolledBack ? { rolled_back: true } : {}),
    ...(outcome.rollbackFailed ? { rollback_failed: outcome.rollbackFailed } : {}),
    ...(outcome.outputs ? { outputs: outcome.outputs } : {}),
    ...(outcome.handlersFailed ? { handlers_failed: outcome.handlersFailed } : {}),
  });
  return outcome;
}

/**
 * Steps in file order, as a file without `depends` has always run: a step starts when the one
 * before it ended, sees every export before it, and after a failure the rest do not run.
 */
async function runInOrder(
  steps: Step[],
  vars: Record<string, string>,
  ctx: StepContext,
): Promise<StepResult[]> {
  const results: StepResult[] = [];
  let failed = false;
  for (const step of steps) {
    if (failed || ctx.signal.aborted) {
      results.push(notRunResult(step, ctx.signal.aborted ? "canceled" : "skipped", ctx.nextEnd()));
      continue;
    }
    const result = await runStep(step, { ...vars }, ctx);
    Object.assign(vars, result.exports);
    results.push(result);
    if (result.failure && !step.continueOnError) failed = true;
  }
  return results;
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
  if (step.call) return runCall(step, step.call, host, ctx);
  if (step.agent) return runAgentStep(step, step.agent, host, ctx);
  const spec = ctx.options.workflow.hosts[host] ?? { kind: "local" };
  const runner = ctx.options.runnerFor(host, spec);
  const policy = retryPolicyOf(step);
  const maxAttempts = policy.attempts;
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
    for (;;) {
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
        // The server lost its database handing out or awaiting the attempt, which says nothing of
        // the step: it is asked for again (the same attempt, a runner may hold it) until it is back.
        if (thrown instanceof RunyardError && thrown.code === "STORE_UNAVAILABLE" && !ctx.signal.aborted) {
          await pause(storeRetryMs, undefined, ctx.options.halt);
          continue;
        }
        result = undefined;
        error = toErrorInfo(thrown);
      }
      break;
    }
    if (result) {
      elapsed += result.duration_ms;
      // Before anything about the attempt is emitted, so its secret exports never show.
      const exported = result.exports;
      ctx.masker.add(secretValues(exported, ctx.secretNames));
      ctx.masker.add(result.secret_exports.map((name) => exported[name] ?? ""));
      // A runner drops these itself; an older runner or agent-server may not.
      const named = withoutSecretNames(exported, ctx.masker);
      const unset = withoutSettingNames(named.kept);
      const refused = [...named.refused, ...unset.refused];
      result = { ...result, exports: unset.kept, warnings: [...result.warnings, ...refused] };
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
    if (ctx.signal.aborted) break;
    const reason = failureReason(result?.status ?? "failed", error);
    if (!reason) break;
    const plan = retryPlan(policy, attempt, reason, result?.exit_code ?? null);
    if (!plan.retry) {
      if (plan.why) ctx.emit({ type: "notice", level: "info", message: plan.why, step: step.name, host });
      break;
    }
    const { delayMs } = plan;
    ctx.emit({
      type: "step.retrying",
      step: step.name,
      host,
      attempt,
      exit_code: result?.exit_code ?? null,
      delay_ms: delayMs,
      reason,
      max_attempts: maxAttempts,
      ...(error ? { error } : {}),
    });
    await pause(delayMs, ctx.signal, ctx.options.halt);
    if (ctx.signal.aborted) break;
  }

  const status = hostStatus(result, error, ctx.signal);
  return finishStep(
    ctx.emit,
    step.name,
    host,
    {
      status,
      exit_code: result?.exit_code ?? null,
      attempts: attempt,
      duration_ms: elapsed,
      memory_peak_bytes: result?.memory_peak_bytes ?? 0,
      cpu_ms: result?.cpu_ms ?? 0,
      ...(result?.output_files[0] ? { output_path: result.output_files[0] } : {}),
      ...(status === "success" || !error ? {} : { error }),
    },
    result?.exports ?? {},
  );
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
    ...(step.image ? { image: step.image } : {}),
    secrets: ctx.masker.values(),
    secret_names: workflow.secrets,
    // The container travels with each attempt, so whichever runner takes it knows to use Docker.
    ...(spec.kind !== "direct" && spec.container ? { container: spec.container } : {}),
  };
}
