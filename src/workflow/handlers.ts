/**
 * `on:` handlers: once a run's outcome is known and its rollbacks have run, the steps of the
 * outcome's list (`success`, `failure` for a failed or timed-out run, `cancel`), then `exit`'s,
 * each list in file order. They read `${RUN_STATUS}`, `${FAILED_STEP}` and the run's variables;
 * a handler that fails is reported, and the run's status stands.
 */
import type { RunStatus, StepSummary } from "../core/events.js";
import type { HandlerOutcome, RunHandlers, Step } from "./model.js";
import { notRunResult, runStep, type StepContext } from "./step-run.js";

export interface HandlersOutcome {
  summaries: StepSummary[];
  /** The handler steps that did not succeed. */
  failed: string[];
}

/** The name a handler step runs under: in events, summaries and the CLI. */
export function handlerStepName(outcome: HandlerOutcome, step: string): string {
  return `on ${outcome}: ${step}`;
}

/** The lists a run's status runs, in order. */
export function handlerLists(status: RunStatus): HandlerOutcome[] {
  if (status === "success") return ["success", "exit"];
  if (status === "canceled") return ["cancel", "exit"];
  return ["failure", "exit"];
}

/**
 * Runs the handlers of `status`. `signal` is the run's own, unless the run was canceled: then
 * the cancel handlers run under a signal of their own (their `timeout_seconds` bound them).
 */
export async function runHandlers(
  handlers: RunHandlers,
  run: { status: RunStatus; failedStep: string | undefined },
  vars: Record<string, string>,
  ctx: StepContext,
): Promise<HandlersOutcome | undefined> {
  const lists = handlerLists(run.status).filter((outcome) => (handlers[outcome] ?? []).length > 0);
  if (lists.length === 0) return undefined;
  const handlerCtx: StepContext =
    run.status === "canceled" ? { ...ctx, signal: new AbortController().signal } : ctx;
  const given = { ...vars, RUN_STATUS: run.status, FAILED_STEP: run.failedStep ?? "" };
  const summaries: StepSummary[] = [];
  const failed: string[] = [];
  for (const outcome of lists) {
    let stopped = false;
    for (const written of handlers[outcome] ?? []) {
      const step: Step = { ...written, name: handlerStepName(outcome, written.name) };
      if (stopped || handlerCtx.signal.aborted) {
        const result = notRunResult(step, handlerCtx.signal.aborted ? "canceled" : "skipped", ctx.nextEnd());
        summaries.push(...result.summaries);
        continue;
      }
      const result = await runStep(step, { ...given }, handlerCtx);
      summaries.push(...result.summaries);
      Object.assign(given, result.exports);
      if (result.failure) {
        failed.push(step.name);
        if (!step.continueOnError) stopped = true;
      }
    }
  }
  return { summaries, failed };
}
