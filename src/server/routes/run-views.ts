import { z } from "zod";
import { ErrorInfo, RunKind, RunStatus, runStatuses, StepSummary } from "../../core/events.js";
import { RunTrigger } from "../../core/run-trigger.js";
import type { RunRecord } from "../../store/index.js";
import { runnerNeeds } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { apiSchemas } from "../api-schemas.js";
import type { ServerDeps } from "../deps.js";
import { groupWaitReason, slotClaim } from "../runs/concurrency-groups.js";
import { type QueuedNeed, waitReason } from "../runs/queue-wait.js";
import { AgentTurnView, agentTurnOf } from "./agent-turns.js";
import { ApprovalView } from "./approvals.js";
import { RunGraph } from "./run-graph.js";

/*
 * How the runs API shows a run: its schema in the OpenAPI document, the list and answer shapes,
 * and what a queued run waits for.
 */

const RunnerNeedView = z.object({
  host: z.string().describe("the host its steps target (an agent or bot run: the job kind)"),
  group: z.string().nullable().describe("null: any group"),
  labels: z.array(z.string()),
  tenant_id: z
    .string()
    .nullable()
    .describe("the tenant whose runners (or shared ones) may take it; null: runners outside any tenant"),
  reason: z
    .string()
    .nullable()
    .describe(
      "why no runner takes it now and what would (tenant, group, labels, runners online); null when one with room may take it",
    ),
});

/** A run a `workflow.call` step started, as its calling run shows it. */
const CalledRunView = z.object({
  step: z.string().describe("the calling step"),
  run_id: z.string().describe("the child run"),
  workflow: z.string().describe("the saved workflow it runs"),
  version: z.number().int().nullable(),
  status: RunStatus,
  steps: z.array(StepSummary).describe("the child's steps so far: drawn collapsed under the call step"),
});
apiSchemas.add(CalledRunView, { id: "CalledRun" });

/** A run as the API shows it: the stored record without the submitted text. */
export const RunView = z.object({
  run_id: z.string(),
  id: z.string(),
  kind: RunKind,
  name: z.string(),
  status: RunStatus,
  tenant_id: z.string().nullable(),
  created_by: z
    .string()
    .nullable()
    .describe("who submitted it: the id (not the secret) of the API token, or the user id of a session"),
  created_by_name: z
    .string()
    .nullable()
    .describe(
      "who submitted it, by name: the user (of a session or a personal token, one revoked since too), else the token's name; null when neither exists any more",
    ),
  authored_by: z
    .string()
    .nullable()
    .describe(
      "who wrote what it runs: the saved version's saver, or the first run's author for a re-run; `created_by` is who triggered it (a hook's or schedule's owner, the caller). The run has the lesser rights of the two",
    ),
  authored_by_name: z.string().nullable().describe("who wrote what it runs, by name"),
  vars: z
    .record(z.string(), z.string())
    .describe(
      "the run's variables: those it started with, then what its steps exported over them; secrets masked",
    ),
  inputs: z
    .record(z.string(), z.string())
    .optional()
    .describe(
      "GET /api/runs/:id of a workflow run: the variables it started with (the workflow's `vars:` under those submitted), secrets masked",
    ),
  steps: z.array(StepSummary),
  error: ErrorInfo.nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  last_seq: z.number().int().describe("the highest event seq stored"),
  last_notify_error: z.string().nullable(),
  concurrency_group: z
    .string()
    .nullable()
    .describe(
      "the concurrency group the run takes turns in (its workflow's `concurrency.group`, expanded); null: none",
    ),
  waiting_for: z
    .array(RunnerNeedView)
    .optional()
    .describe(
      "while queued: the runners the run waits for; while it waits for its concurrency group, each reason says so",
    ),
  trigger: RunTrigger.describe(
    "what started the run: `manual` (the CLI or web UI, which send `X-Runyard-Trigger: manual`), `api` (any other API call), `schedule`, `webhook`, `rerun`, `forge`, `call` (a `workflow.call` step of the run `trigger_ref` names)",
  ),
  trigger_ref: z
    .string()
    .nullable()
    .describe(
      "what is behind the trigger: the schedule id, the hook name, or the run it re-runs; null for none",
    ),
  saved_workflow: z
    .string()
    .nullable()
    .describe("the saved workflow the run ran; null for a workflow sent as text"),
  saved_version: z.number().int().nullable().describe("the version of that saved workflow"),
  approvals: z
    .array(ApprovalView)
    .optional()
    .describe(
      "GET /api/runs/:id of a workflow run: its approval steps that have started waiting (a running run with one `waiting` waits for its answer)",
    ),
  rolled_back: z.boolean().describe("a failed workflow run whose steps' rollbacks all ran and succeeded"),
  rollback_failed: z
    .string()
    .nullable()
    .describe("a failed workflow run: the rollback step that failed (`rollback: deploy`); null: none did"),
  retry_of: z
    .string()
    .nullable()
    .describe(
      "the run this one retries (`POST /api/runs/:id/retry` or `/run-step`): it kept that run's steps that did not need to run again; null for any other run",
    ),
  retry_from: z
    .string()
    .nullable()
    .describe("the step the retry ran from, or the one step a run-step ran; null when `retry_of` is"),
  retries: z
    .array(
      z.object({
        run_id: z.string(),
        status: RunStatus,
        from: z.string().nullable(),
        created_at: z.string(),
      }),
    )
    .optional()
    .describe("GET /api/runs/:id: the runs that retry this one, oldest first"),
  parent_run_id: z
    .string()
    .nullable()
    .describe("a run a `workflow.call` step started: the calling run; null for any other run"),
  parent_step: z.string().nullable().describe("that calling step's name"),
  calls: z
    .array(CalledRunView)
    .optional()
    .describe(
      "GET /api/runs/:id of a workflow run whose `workflow.call` steps have started: their child runs, with their steps",
    ),
  agent_turn: AgentTurnView.optional().describe(
    "an agent run: which turn of its task it is, the run it continues, and the start of its prompt",
  ),
  graph: RunGraph.optional().describe(
    "GET /api/runs/:id of a workflow run: its steps, their edges (`depends`, or each step after the one before it for steps in file order) and matrix combinations, for drawing",
  ),
});
apiSchemas.add(RunView, { id: "Run" });

export const RunList = z.object({
  runs: z.array(RunView),
  next: z.string().nullable().describe("the `before` of the next page; null on the last page"),
});
export const RunSubmitted = z.object({ run_id: z.string(), status: RunStatus });
export const CancelAnswer = z.object({
  run_id: z.string(),
  status: z.enum([...runStatuses, "canceling"]).describe("`canceling` while a runner stops a step"),
});

export const StreamToken = z.object({
  token: z
    .string()
    .describe("a JWT accepted only as `?access_token=` (or Bearer) on this run's event stream"),
  expires_at: z.string(),
  url: z.string().describe("the event stream's path with the token, for `new EventSource(url)`"),
});

/** The agent-server API's run snapshot (`GET /run-status`). */
export const RunStatusSnapshot = z.object({
  run_id: z.string(),
  workflow_name: z.string(),
  status: RunStatus,
  steps: z.array(StepSummary),
  vars: z.record(z.string(), z.string()),
  error: ErrorInfo.nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  last_notify_error: z.string().nullable(),
});

/** A child run as the calling run's page shows it: a group of steps under the call step. */
export async function calledRuns(
  deps: ServerDeps,
  run: RunRecord,
): Promise<z.output<typeof CalledRunView>[]> {
  if (run.kind !== "workflow") return [];
  return (await deps.store.runs.children(run.id)).map((child) => ({
    step: child.parent_step ?? "",
    run_id: child.id,
    workflow: child.saved_workflow ?? child.name,
    version: child.saved_version,
    status: child.status,
    steps: child.steps,
  }));
}

/** A run as the API shows it: the record without the submitted text. */
export function runView(run: RunRecord, names: Map<string, string>): z.output<typeof RunView> {
  const { spec: _spec, ...rest } = run;
  const turn = agentTurnOf(run);
  return {
    run_id: run.id,
    ...rest,
    ...(turn ? { agent_turn: turn } : {}),
    // A token revoked since has no name: its user, kept on the run, still does.
    created_by_name:
      run.created_by === null
        ? null
        : (names.get(run.created_by) ??
          (run.created_by_user ? names.get(run.created_by_user) : undefined) ??
          null),
    authored_by_name: run.authored_by === null ? null : (names.get(run.authored_by) ?? null),
  };
}

/**
 * What a queued run waits for: a workflow's targeted hosts, else (an agent or bot run) its
 * queued jobs' requirements.
 */
async function queuedNeeds(deps: ServerDeps, run: RunRecord): Promise<QueuedNeed[]> {
  const text = (run.spec as { workflow?: unknown } | null)?.workflow;
  const workflow = typeof text === "string" ? parseWorkflow(text, "workflow.yaml").workflow : undefined;
  if (workflow) return runnerNeeds(workflow);
  const jobs = await deps.store.jobs.list({ runId: run.id, statuses: ["queued"] });
  return jobs.map((job) => ({
    host: job.type,
    group: job.requirements.group ?? null,
    labels: job.requirements.labels,
  }));
}

/**
 * The runners a queued run waits for and why each is not served yet, so clients can say why it
 * has not started. Runners are read before the run is read again: a run a runner took meanwhile
 * reads as started, never as waiting because that runner now looks busy.
 */
export async function withWaitingFor(deps: ServerDeps, run: RunRecord, names: Map<string, string>) {
  const needs = await queuedNeeds(deps, run);
  const held = new Map<string, number>();
  for (const job of await deps.store.jobs.list({ statuses: ["assigned", "running"] })) {
    if (job.runner_id) held.set(job.runner_id, (held.get(job.runner_id) ?? 0) + 1);
  }
  const online = (await deps.store.runners.list({ status: "online" })).map((runner) => ({
    ...runner,
    held: held.get(runner.id) ?? 0,
  }));
  const now = (await deps.store.runs.get(run.id)) ?? run;
  if (now.status !== "queued") return runView(now, names);
  // Until it holds its group's slot the run asks no runner: the group is why it waits.
  const claim = slotClaim(now);
  const groupWait = claim && (await deps.store.concurrency.waitingFor(claim));
  const groupReason = claim && groupWait ? groupWaitReason(claim.group, groupWait) : undefined;
  return {
    ...runView(now, names),
    waiting_for: needs.map((need) => ({
      ...need,
      tenant_id: now.tenant_id,
      reason: groupReason ?? waitReason(need, now.tenant_id, online),
    })),
  };
}
