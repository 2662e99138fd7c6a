import { z } from "zod";
import { type Confinement, stepConfinement, workflowSpecConfinement } from "../../core/confinement.js";
import { errorInfo, RunyardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import type { StepAttemptRequest, StepRunner } from "../../core/step-attempt.js";
import { DirectStepRunner, sealedFailureFloorMs } from "../../direct/client.js";
import type { Store } from "../../store/index.js";
import type { AgentStepRunner } from "../../workflow/agent-step.js";
import { agentStepJob, agentStepTask, agentTurnResult } from "../../workflow/agent-step-task.js";
import type { ApprovalGate } from "../../workflow/approval.js";
import { expandConcurrencyGroup } from "../../workflow/concurrency-group.js";
import { runWorkflow } from "../../workflow/engine.js";
import { memberContainersRefusal } from "../../workflow/member-containers.js";
import { everyStep, type HostSpec, runnerRequirements, type Workflow } from "../../workflow/model.js";
import { undeclaredSettingVars } from "../../workflow/outside-values.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { inputValueProblem } from "../../workflow/parse-inputs.js";
import { scheduleIgnoredNotice } from "../../workflow/schedule.js";
import { secretsNotGiven, workflowMasker } from "../../workflow/secrets.js";
import { stepFoldersRefusal } from "../../workflow/step-folders.js";
import type { WorkflowLimits } from "../../workflow/yaml-limits.js";
import type { ApprovalWaits } from "../approvals/approval-waits.js";
import { checkApprovers } from "../approvals/approver-check.js";
import type { JobQueue } from "../job-queue.js";
import type { Notifier } from "../notifier.js";
import { guardedRequest } from "../outbound/guarded-http.js";
import type { OutboundPolicy } from "../outbound/outbound-policy.js";
import type { SpendBudgets } from "../spend-budgets.js";
import { queuedStepRunner } from "../step-jobs.js";
import type { RunTracing } from "../tracing/tracing.js";
import { agentStepRunnerRefusal, runAgentTurn } from "./agent-step-runners.js";
import type { ConcurrencyGroups } from "./concurrency-groups.js";
import type { ActiveRun, PreparedRun, RunKindModule } from "./run-kind.js";
import { resolveStoredSecrets, secretsMissing } from "./stored-secrets.js";
import { maxCallDepth, ResolvedCall, type WorkflowCalls } from "./workflow-calls.js";
import { keepNewest, parsedWorkflow, type WorkflowParser } from "./workflow-parser.js";
import { keptExports, keptSecrets, RetrySpec, realExportsOf, retriedWorkflow } from "./workflow-retries.js";

/**
 * What `POST /api/runs` stores as a workflow run's spec: the real vars, as the engine needs them after a
 * restart (encrypted at rest, never shown by the API; users see the record's masked `vars`). Stored
 * secrets are not in it: they are read each time the run starts or resumes.
 */
export const WorkflowRunSpec = z.object({
  workflow: z.string(),
  vars: z.record(z.string(), z.string()),
  file: z.string().optional(),
  /**
   * Set on an unconfined run (a platform admin's): its direct hosts and notify URLs may be anywhere; else
   * `direct_hosts:` and `notify_hosts:` apply. Through `workflowSpecConfinement` (core/confinement.ts).
   */
  unrestricted_outbound: z.literal(true).optional(),
  /** `--no-rollback`: a failed run does not run its steps' rollbacks; a re-run keeps it. */
  no_rollback: z.literal(true).optional(),
  /** A retry (`runs retry`, `runs run-step`): the run it retries and the steps it keeps of it. */
  retry: RetrySpec.optional(),
  /** A call's child run: how many calls deep it is (a run nobody called: absent, 0). */
  call_depth: z.number().int().min(1).max(maxCallDepth).optional(),
  /** The saved version each `workflow.call` step runs, by step name: resolved at submit. */
  calls: z.record(z.string(), ResolvedCall).optional(),
});
export type WorkflowRunSpec = z.infer<typeof WorkflowRunSpec>;

/** Workflow texts whose parse is kept: the ones submitted or started last. */
const parsedTextsKept = 64;

/**
 * Workflow runs on the server: the engine, with each host's steps placed on runners through the
 * job queue or sent to an agent-server directly. The only server code that knows `Workflow`.
 */
/** A matrix combination's name is its step's and its values: `test (NODE=18)`. */
const matrixSuffix = / \(.*\)$/;

/** Whether `name` (a step's, or a matrix combination's) is one of the `workflow.call` steps. */
function isCallStep(callSteps: ReadonlySet<string>, name: string): boolean {
  return callSteps.has(name) || callSteps.has(name.replace(matrixSuffix, ""));
}

export class WorkflowRuns implements RunKindModule {
  /**
   * Deep-frozen parses by file and text, shared by every run of it: a schedule or CI pipeline submits
   * one text again and again. Checks that depend on who submits (destinations, containers, approvers,
   * secrets) still run for each submit.
   */
  private readonly parsedTexts = new Map<string, Workflow>();

  constructor(
    private readonly store: Pick<Store, "jobs" | "secrets" | "users" | "runners">,
    private readonly queue: JobQueue,
    private readonly notifier: Notifier,
    private readonly directHosts: OutboundPolicy,
    private readonly logger: Logger,
    private readonly parsing: { limits: WorkflowLimits; parse: WorkflowParser },
    private readonly approvals: Pick<ApprovalWaits, "gateFor">,
    private readonly groups: ConcurrencyGroups,
    /** Where a confined run's steps may name a cwd, and the server's home, where no step may (core/work-folders.ts). */
    private readonly folders: { roots: readonly string[]; own: readonly string[] } = { roots: [], own: [] },
    /** Where `workflow.call` steps are resolved at submit and start their child runs; absent: refused. */
    private readonly calls?: WorkflowCalls,
    /** The tenants' and users' spend budgets: an agent step past one fails, a running one is capped. */
    private readonly budgets?: SpendBudgets,
    /** Tracing on: each attempt's job names its span (`TRACEPARENT`). */
    private readonly tracing?: Pick<RunTracing, "stepTrace">,
  ) {}

  /**
   * Checks a submitted workflow: every problem at once, then a step's cwd the run may not use
   * (STEP_CWD_NOT_ALLOWED; unconfined: only runyard's own folders), then (confined) a direct host or notify
   * URL the server may not call (DESTINATION_NOT_ALLOWED), then `secrets:` nothing gives (SECRET_MISSING).
   */
  async prepare(
    spec: WorkflowRunSpec,
    owner: { tenantId: string | null; confinement?: Confinement },
    /** A run of a saved workflow: its vars come from whoever runs it, not from its text. */
    saved = false,
  ): Promise<PreparedRun> {
    const { unrestricted_outbound: _asked, calls: _resolved, ...given } = spec;
    const file = given.file ?? "workflow.yaml";
    const key = `${file}\u0000${given.workflow}`;
    const workflow =
      this.parsedTexts.get(key) ?? deepFreeze(await parsedWorkflow(this.parsing, given.workflow, file));
    keepNewest(this.parsedTexts, key, workflow, parsedTextsKept);
    const confinement = owner.confinement ?? "confined";
    const folders = stepFoldersRefusal(workflow, confinement, this.folders);
    if (folders) throw folders;
    if (confinement === "confined") {
      this.checkDestinations(workflow);
      const refusal = memberContainersRefusal(workflow);
      if (refusal) throw refusal;
    }
    await checkApprovers(this.store.users, workflow, owner.tenantId);
    if (saved) {
      const declared = new Set([...Object.keys(workflow.vars), ...Object.keys(workflow.inputs ?? {})]);
      const refused = undeclaredSettingVars(spec.vars, declared, file);
      if (refused) throw refused;
    }
    const vars = { ...workflow.vars, ...spec.vars };
    for (const [name, input] of Object.entries(workflow.inputs ?? {})) {
      const problem = inputValueProblem(input, vars[name] ?? "");
      if (problem) {
        throw new RunyardError("INVALID_INPUT", `vars: ${name} ${problem}`, {
          hint: `${file} declares ${name} in inputs: as ${input.type}${input.type === "string" ? ` of at most ${input.maxLength} characters` : ""}; give a value that fits.`,
        });
      }
    }
    const tenantId = owner.tenantId;
    const { missing } = await resolveStoredSecrets(
      this.store.secrets,
      tenantId,
      secretsNotGiven(workflow, vars),
    );
    if (missing.length > 0) throw secretsMissing(missing, tenantId);
    const group = workflow.concurrency && expandConcurrencyGroup(workflow.concurrency, vars, file);
    const calls = await this.resolveCalls(workflow, file, owner.tenantId, vars, spec.call_depth ?? 0);
    const stored = calls ? { ...given, calls } : given;
    return {
      name: workflow.name,
      ...(group ? { concurrency_group: group } : {}),
      spec: { ...stored, ...workflowSpecConfinement.write(confinement) },
      vars: workflowMasker(workflow, vars).maskDeep(vars),
    };
  }

  /** The saved versions the workflow's calls run; undefined when it makes none. */
  private async resolveCalls(
    workflow: Workflow,
    file: string,
    tenantId: string | null,
    vars: Record<string, string>,
    depth: number,
  ): Promise<Record<string, ResolvedCall> | undefined> {
    if (!everyStep(workflow).some((step) => step.call)) return undefined;
    if (!this.calls)
      throw new RunyardError("CALL_NEEDS_SERVER", "this server does not run workflow.call steps");
    return this.calls.resolve(workflow, file, tenantId, vars, depth);
  }

  /** Refuses what is known to be off limits before any DNS lookup; names are checked at connect time. */
  private checkDestinations(workflow: Workflow): void {
    for (const spec of Object.values(workflow.hosts)) {
      if (spec.kind !== "direct") continue;
      const refusal = this.directHosts.refusalOf(spec.address);
      if (refusal) throw refusal;
    }
    for (const target of workflow.notify) {
      const refusal = this.notifier.refusalOf(target.url);
      if (refusal) throw refusal;
    }
  }

  async start(run: ActiveRun): Promise<void> {
    const stored = WorkflowRunSpec.safeParse(run.record.spec);
    if (!stored.success)
      throw new RunyardError("INVALID_INPUT", "the stored workflow run spec is unreadable");
    const file = stored.data.file ?? "workflow.yaml";
    const key = `${file}\u0000${stored.data.workflow}`;
    let workflow = this.parsedTexts.get(key);
    try {
      // A run carried on (restarted, parked) whose text is no longer kept: parsed and kept again.
      workflow ??= parseWorkflow(stored.data.workflow, file, this.parsing.limits).workflow;
    } catch {}
    if (!workflow) throw new RunyardError("INVALID_INPUT", "the stored workflow no longer parses");
    keepNewest(this.parsedTexts, key, deepFreeze(workflow), parsedTextsKept);
    const runId = run.record.id;
    const confinement = workflowSpecConfinement.read(stored.data);
    this.notifier.follow(runId, workflow.name, workflow.notify, confinement === "unconfined");
    const tenantId = run.record.tenant_id;
    const given = { ...workflow.vars, ...stored.data.vars };
    const secrets = await resolveStoredSecrets(
      this.store.secrets,
      tenantId,
      secretsNotGiven(workflow, given),
    );
    // A secret removed since submit or resume: the run stops as a cancel does and fails, saying why.
    const missing =
      secrets.missing.length > 0 ? secretsMissing(secrets.missing, tenantId).toInfo() : undefined;
    // A run whose first work is a `workflow.call` starts as the call step does: no runner takes it up.
    const callSteps = new Set(everyStep(workflow).flatMap((step) => (step.call ? [step.name] : [])));
    const emit: typeof run.sink.emit = (event) => {
      if (event.type === "step.started" && callSteps.size > 0 && isCallStep(callSteps, event.step))
        run.markStarted("server");
      run.sink.emit(
        missing && event.type === "run.finished" ? { ...event, status: "failed", error: missing } : event,
      );
    };
    const resuming = run.resumed.length > 0;
    if (!resuming && run.record.saved_workflow === null && (workflow.schedules ?? []).length > 0)
      run.sink.emit({ type: "notice", level: "warn", message: scheduleIgnoredNotice });
    if (!resuming && workflow.concurrency?.cancelInProgress) await this.groups.cancelBefore(run.record);
    // Before any step: a run waiting for its group holds no runner; canceled meanwhile, it ends as such.
    await this.groups.waitForSlot(run);
    try {
      if (resuming) await this.queue.restorePins(runId);
      const retry = stored.data.retry;
      await runWorkflow({
        workflow: retriedWorkflow(workflow, retry),
        runId,
        vars: { ...stored.data.vars, ...secrets.values },
        secrets: [...Object.values(secrets.values), ...keptSecrets(retry)],
        emit,
        runnerFor: (host, spec) => this.runnerFor(run, host, spec, confinement),
        signal: missing ? AbortSignal.abort() : run.signal,
        halt: run.halt,
        resume: [...run.resumed],
        ...(resuming
          ? { resumeExports: new Map([...keptExports(retry), ...(await realExportsOf(this.store, runId))]) }
          : {}),
        ...(retry ? { kept: { run: retry.of, steps: retry.kept } } : {}),
        announceStart: false,
        approvals: this.gateFor(run),
        agents: this.agentStepsFor(run, workflow, confinement),
        rollback: stored.data.no_rollback !== true,
        ...(this.calls
          ? {
              calls: this.calls.callerFor({
                record: run.record,
                depth: stored.data.call_depth ?? 0,
                calls: stored.data.calls ?? {},
                confinement,
              }),
            }
          : {}),
      });
      // Only a run that ended here frees its group: a failed engine's run is interrupted (freeing it) or
      // adopted elsewhere, still holding it.
      await this.groups.release(run.record);
    } finally {
      this.queue.forgetRun(runId);
    }
  }

  /** A run whose first work is an approval starts as it begins to wait: no runner takes it up. */
  private gateFor(run: ActiveRun): ApprovalGate {
    const gate = this.approvals.gateFor(run.record.id);
    return {
      open: (request) => {
        run.markStarted("server");
        return gate.open(request);
      },
      answer: gate.answer,
    };
  }

  /**
   * Where `agent.run` steps go: an `agent` job (as `runyard agent run` makes) for a runner of the step's
   * host with the agent. A confined run's turn is confined as an agent run's (the runner's folders only,
   * the operator's keys only through its key proxy); its events are the pipeline's, on the agent's host.
   */
  private agentStepsFor(run: ActiveRun, workflow: Workflow, confinement: Confinement): AgentStepRunner {
    return {
      turn: async (request, io) => {
        const spec = workflow.hosts[request.host] ?? { kind: "local" as const };
        if (spec.kind === "direct") {
          return {
            status: "failed",
            error: errorInfo(
              "AGENT_STEP_UNAVAILABLE",
              `host "${request.host}" is an agent-server, which runs commands only: an agent.run step needs a runner host`,
            ),
          };
        }
        const { group, labels } = runnerRequirements(spec);
        const task = agentStepTask(request, { env: {}, confinement });
        // An agent step is one attempt (engine: agent-step.ts) whatever its turns: they share its span.
        const trace = await this.tracing?.stepTrace(request.runId, request.step, request.host, 1);
        if (trace) task.trace = trace;
        const host = { ...(group !== null ? { group } : {}), labels };
        const requirements = {
          ...host,
          labels: [...labels, `agent:${request.spec.agent}`, request.spec.repo ? "mode:issue" : "mode:chat"],
        };
        // A turn no runner of the host could take would wait in the queue for good.
        const nobody = await agentStepRunnerRefusal(this.store.runners, run.record.tenant_id, request, host);
        if (nobody) return { status: "failed", error: nobody };
        const job = agentStepJob(request, task);
        const placement = { host: request.spec.agent, requirements };
        const outcome = await runAgentTurn(this.queue, this.budgets, run, job, placement, io.signal);
        return "refused" in outcome ? { status: "failed", error: outcome.refused } : agentTurnResult(outcome);
      },
    };
  }

  private runnerFor(run: ActiveRun, host: string, spec: HostSpec, confinement: Confinement): StepRunner {
    if (spec.kind === "direct") {
      const policy = this.directHosts;
      const logger = this.logger;
      const direct = new DirectStepRunner({
        address: spec.address,
        ...(spec.token ? { token: spec.token } : {}),
        ...(confinement === "unconfined"
          ? {}
          : {
              transport: (call) => guardedRequest(policy, call),
              sealed: {
                failureFloorMs: sealedFailureFloorMs,
                report: (detail) =>
                  logger.warn(
                    { runId: run.record.id, host, address: spec.address },
                    `direct host: ${detail}`,
                  ),
              },
            }),
      });
      return {
        // The run starts as the attempt is sent; its step.started follows run.started.
        startsLater: true,
        runAttempt: async (request, io) => {
          const traced = await this.traced(request);
          run.markStarted(`agent-server ${spec.address}`);
          io.started?.();
          return direct.runAttempt(traced, io);
        },
      };
    }
    const { group, labels } = runnerRequirements(spec);
    const requirements = { ...(group !== null ? { group } : {}), labels };
    const queued = queuedStepRunner(
      this.queue,
      run.record.id,
      run.sink,
      { host, requirements },
      run.record.tenant_id,
    );
    // A platform admin's containers may join any network and run any image (the runner sees it here); the
    // tenant tells a shared runner whose network rules apply.
    const owner = {
      tenant_id: run.record.tenant_id,
      ...stepConfinement.write(confinement),
    };
    return {
      ...queued,
      runAttempt: async (request, io) => queued.runAttempt({ ...(await this.traced(request)), ...owner }, io),
    };
  }

  /** The attempt with its span's context, when tracing is on. */
  private async traced(request: StepAttemptRequest): Promise<StepAttemptRequest> {
    if (!this.tracing) return request;
    const trace = await this.tracing.stepTrace(request.run_id, request.step, request.host, request.attempt);
    return trace ? { ...request, trace } : request;
  }
}

/** Freezes `value` and everything it holds: a parsed workflow is shared by every run of its text. */
function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  for (const inner of Object.values(value)) deepFreeze(inner);
  return Object.freeze(value);
}
