/**
 * `action: workflow.call` steps: a saved workflow runs as a child run; its `outputs:` are exported.
 * The server's `WorkflowCaller` stores the child linked to this run and step, so a call resumed after
 * a restart (on any replica) waits for the child it started, never a second one.
 */
import { errorInfo, RunyardError, toErrorInfo } from "../core/errors.js";
import type { ErrorInfo, RunStatus, StepStatus } from "../core/events.js";
import type { HostContext } from "./engine.js";
import { pause } from "./halt.js";
import type { CallSpec, Step } from "./model.js";
import { settingExportsError } from "./outside-values.js";
import { callInputValues } from "./parse-call.js";
import { finishStep, type HostOutcome } from "./step-run.js";

/** What a call step asks of the server. */
export interface CallRequest {
  step: string;
  workflow: string;
  version?: number;
  /** The input values, `${VAR}` replaced. */
  inputs: Record<string, string>;
  /** Told once the child run exists (again for a resumed call): the step says `step.called`. */
  started(child: CalledRun): void;
}

/** The child run a call started. */
export interface CalledRun {
  runId: string;
  workflow: string;
  version: number;
}

/** How the child run ended. */
export interface CallResult {
  child: CalledRun;
  status: RunStatus;
  /** Its `outputs:`, as its `run.finished` gave them (masked). */
  outputs: Record<string, string>;
  /** The first of its steps that did not succeed, when it failed. */
  failedStep?: string;
  error?: ErrorInfo;
}

/** Where a run's call steps start their child runs: a server. */
export interface WorkflowCaller {
  /**
   * Starts the step's child run once (a resumed call gets the child it started); resolves when it
   * ended, canceling it when `signal` aborts first. Rejects when its submit was refused.
   */
  call(request: CallRequest, signal: AbortSignal): Promise<CallResult>;
}

/** How often a call the server could not start or wait for (its database away) is asked again. */
const storeRetryMs = 1000;

/** Runs a call step: `step.started`, `step.called`, the child's `vars.exported`, `step.finished`. */
export async function runCall(
  step: Step,
  spec: CallSpec,
  host: string,
  ctx: HostContext,
): Promise<HostOutcome> {
  const began = Date.now();
  if (!ctx.prior) ctx.emit({ type: "step.started", step: step.name, host, attempt: 1 });
  let result: CallResult | undefined;
  let error: ErrorInfo | undefined;
  const caller = ctx.options.calls;
  if (!caller) {
    error = errorInfo(
      "CALL_NEEDS_SERVER",
      `it runs the saved workflow ${spec.workflow}, and saved workflows live on a server`,
    );
  } else {
    let announced = ctx.prior?.called !== undefined;
    const request = (): Promise<CallResult> =>
      caller.call(
        {
          step: step.name,
          workflow: spec.workflow,
          ...(spec.version !== undefined ? { version: spec.version } : {}),
          inputs: callInputValues(spec.inputs, ctx.vars),
          started: (child) => {
            if (announced) return;
            announced = true;
            ctx.emit({
              type: "step.called",
              step: step.name,
              host,
              child_run_id: child.runId,
              workflow: child.workflow,
              version: child.version,
            });
          },
        },
        ctx.signal,
      );
    for (;;) {
      try {
        result = await request();
      } catch (thrown) {
        // The server lost its database: the call (which starts its child once) is asked again.
        if (thrown instanceof RunyardError && thrown.code === "STORE_UNAVAILABLE" && !ctx.signal.aborted) {
          await pause(storeRetryMs, undefined, ctx.options.halt);
          continue;
        }
        // A refused submit (an input the called version lacks, a cycle saved since) is the step's error.
        error = toErrorInfo(thrown);
      }
      break;
    }
  }
  if (result && result.status !== "success") error = childError(result);
  // The called workflow may be another author's: its output names are checked here again, where every
  // call's outputs pass on their way to this run's steps.
  if (result?.status === "success") {
    const outputs = `the outputs of ${result.child.workflow} v${result.child.version}`;
    error = settingExportsError("EXPORT_NAME_REFUSED", step.name, Object.keys(result.outputs), outputs);
  }
  const status: StepStatus = ctx.signal.aborted
    ? "canceled"
    : result?.status === "success" && !error
      ? "success"
      : result?.status === "timeout"
        ? "timeout"
        : "failed";
  const exports = status === "success" ? (result?.outputs ?? {}) : {};
  const duration = Math.max(0, Date.now() - began);
  return finishStep(
    ctx.emit,
    step.name,
    host,
    { status, attempts: 1, duration_ms: duration, ...(status !== "success" && error ? { error } : {}) },
    exports,
  );
}

/** The step's error for a child that did not succeed: which run, and which of its steps. */
function childError(result: CallResult): ErrorInfo {
  const { child } = result;
  const at = result.failedStep ? ` at step "${result.failedStep}"` : "";
  const why = result.error ? `: ${result.error.code}: ${result.error.message}` : "";
  return errorInfo(
    "CALL_FAILED",
    `run ${child.runId} of ${child.workflow} v${child.version} ended ${result.status}${at}${why}`,
  );
}
