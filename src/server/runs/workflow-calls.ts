/**
 * `workflow.call` steps. At submit each call (and its callees', to `maxCallDepth`) resolves to a saved
 * version of the run's tenant or the platform's, its inputs checked against `inputs:`, a cycle refused,
 * each problem at its line and column. At run time a call step stores its child (one per step by a
 * unique key, so a replica carrying the call on finds it), waits for it, and cancels it with the step.
 */
import { setTimeout as delay } from "node:timers/promises";
import { z } from "zod";
import type { Confinement } from "../../core/confinement.js";
import { RunyardError } from "../../core/errors.js";
import { type EventOf, isFinalStatus } from "../../core/events.js";
import type { RunRecord, SavedWorkflowRecord, Store } from "../../store/index.js";
import type { CallRequest, CallResult, WorkflowCaller } from "../../workflow/call.js";
import { type Diagnostic, everyStep, type Workflow, workflowProblemsError } from "../../workflow/model.js";
import { callInputPos, callInputValues } from "../../workflow/parse-call.js";
import { inputValueProblem } from "../../workflow/parse-inputs.js";
import type { WorkflowLimits } from "../../workflow/yaml-limits.js";
import { runConfinement } from "./run-confinement.js";
import type { RunOrigin, RunOwner } from "./run-origin.js";
import { parsedWorkflow, type WorkflowParser } from "./workflow-parser.js";

/** How deep calls may nest: a run calls, whose child calls ... eight levels at most. */
export const maxCallDepth = 8;
/** How often a call step looks at its child run while it waits. */
const childPollMs = 200;

/** A call resolved at submit: the saved version it runs (stored in the run's spec). */
export const ResolvedCall = z.object({
  /** The tenant whose saved workflow it is; null: the platform's. */
  tenant_id: z.string().nullable(),
  name: z.string(),
  version: z.number().int().positive(),
});
export type ResolvedCall = z.infer<typeof ResolvedCall>;

/** What a call step's child run is submitted with; the run service's `submitWorkflow`. */
export type SubmitChild = (
  spec: { workflow: string; vars: Record<string, string>; file: string; call_depth: number },
  owner: RunOwner,
  origin: RunOrigin & { parent: { runId: string; step: string } },
) => Promise<RunRecord>;

/** The run a call is made from, as the caller needs it. */
export interface CallingRun {
  record: RunRecord;
  /** How deep the run itself is: 0 for a run nobody called. */
  depth: number;
  calls: Record<string, ResolvedCall>;
  /** What the calling run stored: its children are at most as unconfined. */
  confinement: Confinement;
}

export class WorkflowCalls {
  constructor(
    private readonly store: Pick<Store, "savedWorkflows" | "runs" | "events">,
    private readonly parsing: { limits: WorkflowLimits; parse: WorkflowParser },
    private readonly runs: { submit: SubmitChild; cancel: (runId: string) => Promise<unknown> },
  ) {}

  /**
   * The saved version each call step of `workflow` (a run `depth` deep, in `tenantId`) runs. Refuses with
   * WORKFLOW_INVALID, each at its line and column: a workflow not found (another tenant's is not), an
   * undeclared or mistyped input, a required one missing, a cycle, a depth past `maxCallDepth`.
   */
  async resolve(
    workflow: Workflow,
    file: string,
    tenantId: string | null,
    vars: Record<string, string>,
    depth = 0,
    chain: readonly string[] = [],
  ): Promise<Record<string, ResolvedCall>> {
    const problems: Diagnostic[] = [];
    const resolved: Record<string, ResolvedCall> = {};
    for (const step of everyStep(workflow)) {
      const call = step.call;
      if (!call) continue;
      const at = (pos: { line: number; col: number }, message: string, hint?: string) =>
        problems.push({ file, ...pos, message, ...(hint ? { hint } : {}) });
      const saved = await this.savedVersion(tenantId, call.workflow, call.version);
      if (!saved) {
        at(
          call.workflowPos,
          call.version !== undefined
            ? `step "${step.name}" calls ${call.workflow} version ${call.version}, which does not exist`
            : `step "${step.name}" calls ${call.workflow}, which is no saved workflow of this tenant or the platform`,
          "`runyard workflow list` shows the saved workflows you may call; save one with `runyard workflow save FILE --name NAME`",
        );
        continue;
      }
      const key = `${saved.tenant_id ?? ""}/${saved.name}`;
      if (chain.includes(key)) {
        at(
          call.workflowPos,
          `step "${step.name}" calls ${saved.name}, which is already in the chain of calls (${[...chain.map(shortName), shortName(key)].join(" -> ")}): a cycle`,
          "a workflow may not call itself, directly or through others",
        );
        continue;
      }
      if (depth + 1 > maxCallDepth) {
        at(
          call.workflowPos,
          `step "${step.name}" calls ${saved.name} ${depth + 1} calls deep; calls nest ${maxCallDepth} deep at most`,
          "flatten the chain: call fewer workflows inside each other",
        );
        continue;
      }
      const callee = await parsedWorkflow(this.parsing, saved.workflow, saved.file);
      const declared = callee.inputs ?? {};
      const given = callInputValues(call.inputs, vars);
      for (const [name, value] of Object.entries(given)) {
        const input = declared[name];
        if (!input) {
          const names = Object.keys(declared);
          at(
            callInputPos(call, name),
            `step "${step.name}": ${saved.name} v${saved.version} declares no input ${name}`,
            names.length > 0 ? `its inputs: ${names.join(", ")}` : `${saved.name} declares no inputs:`,
          );
          continue;
        }
        // A value made of exports of earlier steps is known when the step starts; checked then.
        if (/\$\{[A-Za-z_][A-Za-z0-9_]*\}/.test(value)) continue;
        const problem = inputValueProblem(input, value);
        if (problem) {
          at(
            callInputPos(call, name),
            `step "${step.name}": input ${name} of ${saved.name} ${problem}`,
            `${saved.name} declares ${name} as ${input.type}${input.options ? ` (${input.options.join(", ")})` : ""}`,
          );
        }
      }
      for (const [name, input] of Object.entries(declared)) {
        if (input.required && !(name in given) && input.default === "") {
          at(
            call.workflowPos,
            `step "${step.name}": ${saved.name} requires input ${name}, which args.inputs does not give`,
            `add inputs: {${name}: value}`,
          );
        }
      }
      try {
        // The callee's own calls, resolved now so a cycle or a depth is refused before anything runs.
        await this.resolve(callee, saved.file, tenantId, { ...callee.vars, ...given }, depth + 1, [
          ...chain,
          key,
        ]);
      } catch (error) {
        if (!(error instanceof RunyardError)) throw error;
        at(
          call.workflowPos,
          `step "${step.name}" calls ${saved.name} v${saved.version}, which cannot run: ${error.message.split("\n").slice(1).join("; ") || error.message}`,
        );
        continue;
      }
      resolved[step.name] = { tenant_id: saved.tenant_id, name: saved.name, version: saved.version };
    }
    if (problems.length > 0) throw workflowProblemsError(file, problems);
    return resolved;
  }

  /** The engine's caller for one run. */
  callerFor(run: CallingRun): WorkflowCaller {
    return { call: (request, signal) => this.call(run, request, signal) };
  }

  private async call(run: CallingRun, request: CallRequest, signal: AbortSignal): Promise<CallResult> {
    const resolved = run.calls[request.step];
    if (!resolved) {
      throw new RunyardError(
        "INTERNAL",
        `step "${request.step}" was not resolved when the run was submitted`,
      );
    }
    const child =
      (await this.childOf(run.record.id, request.step)) ?? (await this.startChild(run, request, resolved));
    const called = { runId: child.id, workflow: resolved.name, version: resolved.version };
    request.started(called);
    const ended = await this.waitFor(child.id, signal);
    const finished = await this.finishedEvent(ended);
    const failedStep = ended.steps.find((s) => s.status === "failed" || s.status === "timeout")?.name;
    return {
      child: called,
      status: ended.status,
      outputs: finished?.outputs ?? {},
      ...(failedStep ? { failedStep } : {}),
      ...(ended.error ? { error: ended.error } : {}),
    };
  }

  private async childOf(parentId: string, step: string): Promise<RunRecord | undefined> {
    return (await this.store.runs.children(parentId, step))[0];
  }

  private async startChild(
    run: CallingRun,
    request: CallRequest,
    resolved: ResolvedCall,
  ): Promise<RunRecord> {
    const saved = await this.store.savedWorkflows.get(resolved.tenant_id, resolved.name, resolved.version);
    if (!saved) {
      throw new RunyardError(
        "NOT_FOUND",
        `saved workflow ${resolved.name} v${resolved.version} was removed`,
        { hint: "Save it again, then run the calling workflow again." },
      );
    }
    try {
      // Its submit checks it as any run's, and resolves the calls it makes in turn.
      return await this.runs.submit(
        { workflow: saved.workflow, vars: request.inputs, file: saved.file, call_depth: run.depth + 1 },
        {
          // The child is the calling run's tenant's, triggered by whoever triggered the caller,
          // with the lesser rights of them and the called version's author.
          tenantId: run.record.tenant_id,
          tokenId: run.record.created_by,
          userId: run.record.created_by_user,
          confinement: runConfinement({ earlier: run.confinement, saved }),
        },
        {
          trigger: "call",
          ref: run.record.id,
          saved: { name: saved.name, version: saved.version },
          authoredBy: saved.created_by,
          parent: { runId: run.record.id, step: request.step },
        },
      );
    } catch (error) {
      // Another replica carrying the call on started it meanwhile: that one is the child.
      const existing =
        error instanceof RunyardError &&
        error.code === "CONFLICT" &&
        (await this.childOf(run.record.id, request.step));
      if (existing) return existing;
      throw error;
    }
  }

  /** The child once it has ended; canceled first when `signal` aborts. */
  private async waitFor(childId: string, signal: AbortSignal): Promise<RunRecord> {
    let asked = false;
    for (;;) {
      const record = await this.store.runs.get(childId);
      if (!record) throw new RunyardError("NOT_FOUND", `called run ${childId} is gone`);
      if (isFinalStatus(record.status)) return record;
      if (signal.aborted && !asked) {
        asked = true;
        await this.runs.cancel(childId).catch(() => undefined);
        continue;
      }
      await delay(childPollMs, undefined, asked ? {} : { signal }).catch(() => undefined);
    }
  }

  private async finishedEvent(run: RunRecord): Promise<EventOf<"run.finished"> | undefined> {
    const events = await this.store.events.list(run.id, { after: Math.max(0, run.last_seq - 20), limit: 50 });
    return events.find((e): e is EventOf<"run.finished"> => e.type === "run.finished");
  }

  private async savedVersion(
    tenantId: string | null,
    name: string,
    version: number | undefined,
  ): Promise<SavedWorkflowRecord | undefined> {
    const own = await this.store.savedWorkflows.get(tenantId, name, version);
    if (own || tenantId === null) return own;
    return this.store.savedWorkflows.get(null, name, version);
  }
}

function shortName(key: string): string {
  return key.replace(/^[^/]*\//, "");
}
