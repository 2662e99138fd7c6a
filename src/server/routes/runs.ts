import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import {
  ErrorInfo,
  isFinalStatus,
  RunEvent,
  RunKind,
  RunStatus,
  runStatuses,
  StepSummary,
} from "../../core/events.js";
import { RunTrigger } from "../../core/run-trigger.js";
import type { RunRecord } from "../../store/index.js";
import { runnerNeeds } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import {
  isVariableName,
  maxVarsBytes,
  maxVarValueBytes,
  variableNameHint,
} from "../../workflow/yaml-reader.js";
import { apiSchemas, maxNameLength, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf, isPlatformAdmin, submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedErrorResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { bearerOrQueryToken } from "../openapi.js";
import { requestTrigger } from "../run-trigger.js";
import { fromOpenRunnerBody, OpenRunnerRunBody, SubmitAgentRunBody } from "../runs/agent-spec.js";
import { groupWaitReason, slotClaim } from "../runs/concurrency-groups.js";
import { type QueuedNeed, waitReason } from "../runs/queue-wait.js";
import { type StreamGauge, streamRunEvents } from "../sse.js";
import { ApprovalView, approvalViews } from "./approvals.js";
import { RunGraph, workflowGraph } from "./run-graph.js";
import { storedWorkflow, workflowInputs } from "./run-inputs.js";
import { submitterNames } from "./run-submitters.js";
import { visibleRun, visibleRunState } from "./visible-run.js";

/** The largest `POST /api/runs` body: a workflow and its vars, never bulk data. */
export const runBodyLimit = 8 * 1024 * 1024;

/** The most variables (`vars`) or environment entries (`env`) a submit may carry. */
export const maxSubmitNames = 1000;

/**
 * Refuses a submit with more than `maxSubmitNames` vars or env entries before its schema reads
 * each name (400,000 empty vars, 5 MB, took 3 s to check and 12 s to queue, the server answering
 * nothing else meanwhile), and one whose variables' values are larger than the caps above.
 */
export async function capSubmitVariables(request: FastifyRequest): Promise<void> {
  const body: unknown = request.body;
  if (body === null || typeof body !== "object") return;
  for (const field of ["vars", "env"] as const) {
    const value: unknown = (body as Record<string, unknown>)[field];
    if (value === null || typeof value !== "object") continue;
    const count = Object.keys(value).length;
    if (count > maxSubmitNames)
      throw new RunyardError("INVALID_INPUT", `${field}: at most ${maxSubmitNames} names, not ${count}`, {
        hint: "Pass bulk data as a file or an artifact, not as variables.",
      });
    let total = 0;
    for (const [name, entry] of Object.entries(value)) {
      // The schema coerces every value to a string (an array becomes its items joined by commas):
      // measure the text it becomes, so no shape of value passes the cap.
      const bytes = Buffer.byteLength(typeof entry === "string" ? entry : String(entry));
      total += bytes;
      if (bytes > maxVarValueBytes)
        throw new RunyardError(
          "INVALID_INPUT",
          `${field}: the value of ${JSON.stringify(name.slice(0, 60))} is ${bytes} bytes; each value may hold ${maxVarValueBytes} (128 KiB)`,
          {
            hint: "Pass bulk data as a file or an artifact, not as variables: a step gets each as an environment string, which the kernel refuses past 128 KiB.",
          },
        );
    }
    if (total > maxVarsBytes)
      throw new RunyardError(
        "INVALID_INPUT",
        `${field}: the values hold ${total} bytes in all; a submit's may hold ${maxVarsBytes} (256 KiB)`,
        { hint: "Pass bulk data as a file or an artifact, not as variables." },
      );
  }
}

export const SubmitWorkflowRunBody = z.strictObject({
  kind: z.literal("workflow").default("workflow"),
  workflow: z
    .string()
    .min(1, "workflow is empty: send the YAML text of a workflow")
    .describe("the workflow YAML text, as `runyard run FILE` would read it"),
  vars: z
    .record(z.string().max(maxNameLength), z.coerce.string())
    .default({})
    .describe("variables over the workflow's `vars:`; values are taken as strings"),
  file: z.string().max(maxNameLength).optional().describe("the file name shown in validation messages"),
  no_rollback: z
    .boolean()
    .optional()
    .describe("true: when the run fails, its steps' `rollback:` do not run (`runyard run --no-rollback`)"),
});

/**
 * A workflow (the default when `kind` is absent) or an agent task; the OpenRunner-style API's form
 * is turned into the latter.
 */
export const SubmitRunBody = z.discriminatedUnion("kind", [SubmitWorkflowRunBody, SubmitAgentRunBody]);

export const ListRunsQuery = z.strictObject({
  status: RunStatus.optional(),
  kind: RunKind.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50).describe("page size"),
  before: z.string().optional().describe("the `next` of the previous page"),
});

const RunParams = z.object({ id: z.string().min(1).describe("the run id") });

const EventsQuery = z.object({
  after: z.coerce
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe("resume after this seq (as Last-Event-ID)"),
  access_token: z.string().optional(),
  follow: z
    .enum(["0", "1", "false", "true"])
    .optional()
    .describe("`0`: send what is stored and end, instead of waiting for more"),
});

const RunStatusQuery = z.object({
  run_id: z
    .string({ error: "run_id is required: GET /run-status?run_id=<id>" })
    .min(1)
    .describe("the run id"),
});

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

/** A run as the API shows it: the stored record without the submitted text. */
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
  graph: RunGraph.optional().describe(
    "GET /api/runs/:id of a workflow run whose steps form a graph (`depends`) or that has a matrix step: its steps, their edges and matrix combinations, for drawing",
  ),
});
apiSchemas.add(RunView, { id: "Run" });

const RunList = z.object({
  runs: z.array(RunView),
  next: z.string().nullable().describe("the `before` of the next page; null on the last page"),
});
const RunSubmitted = z.object({ run_id: z.string(), status: RunStatus });
const CancelAnswer = z.object({
  run_id: z.string(),
  status: z.enum([...runStatuses, "canceling"]).describe("`canceling` while a runner stops a step"),
});

const StreamToken = z.object({
  token: z
    .string()
    .describe("a JWT accepted only as `?access_token=` (or Bearer) on this run's event stream"),
  expires_at: z.string(),
  url: z.string().describe("the event stream's path with the token, for `new EventSource(url)`"),
});

/** The agent-server API's run snapshot (`GET /run-status`). */
const RunStatusSnapshot = z.object({
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
async function calledRuns(deps: ServerDeps, run: RunRecord): Promise<z.output<typeof CalledRunView>[]> {
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
  return {
    run_id: run.id,
    ...rest,
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
async function withWaitingFor(deps: ServerDeps, run: RunRecord, names: Map<string, string>) {
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

export function runRoutes(app: FastifyInstance, deps: ServerDeps, streams: StreamGauge): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    "/api/runs",
    {
      bodyLimit: runBodyLimit,
      config: idempotentRoute,
      schema: {
        operationId: "submitRun",
        summary: "Submit a workflow run or an agent task",
        description:
          'Validates the workflow and queues a run. Bad YAML is 400 WORKFLOW_INVALID with `file:line:col` diagnostics; a body over 8 MiB is 413; a quota of the tenant or user reached is 429 QUOTA_EXCEEDED (`{"status":"failure","error":{...}}`), and nothing is stored.' +
          idempotentRouteNote,
        tags: ["runs"],
        headers: IdempotencyKeyHeaders,
        body: SubmitRunBody,
        response: {
          201: {
            description: "the run is queued",
            content: { "application/json": { schema: RunSubmitted } },
          },
          ...protectedErrorResponses(400, 409, 413, 429),
        },
      },
      // The OpenRunner-style API's agent body ({input, metadata}) becomes the native one; a body
      // without a kind is a workflow, as before agents existed.
      preValidation: async (request) => {
        await capSubmitVariables(request);
        const body = request.body as Record<string, unknown> | undefined;
        if (!body || typeof body !== "object" || Array.isArray(body) || "kind" in body) return;
        if ("input" in body && !("workflow" in body)) {
          const openRunner = OpenRunnerRunBody.safeParse(body);
          if (!openRunner.success) {
            const issue = openRunner.error.issues[0];
            const where = issue?.path.join(".") || "body";
            const unknown = issue?.code === "unrecognized_keys" ? issue.keys : [];
            throw new RunyardError(
              "INVALID_INPUT",
              unknown.length > 0
                ? `${where}: unknown field${unknown.length > 1 ? "s" : ""} ${unknown.map((key) => JSON.stringify(key)).join(", ")}`
                : `${where}: ${issue?.message ?? "invalid"}`,
              {
                hint:
                  unknown.length > 0
                    ? `The OpenRunner-style body takes input.text and metadata.agent_type, cwd (or working_dir), timeout_secs, model and extra_args; for more (stall_secs, budget, env) use the native agent body, {"kind":"agent",...} (docs/agents.md).`
                    : 'The OpenRunner-style form: {"input":{"text":"create hello.py"},"metadata":{"agent_type":"claude_code","cwd":"/tmp/test"}}.',
                ...(unknown.length > 0
                  ? {
                      details: unknown.map((key) => ({
                        path: where === "body" ? key : `${where}.${key}`,
                        message: "unrecognized key",
                      })),
                    }
                  : {}),
              },
            );
          }
          (request as { body: unknown }).body = fromOpenRunnerBody(openRunner.data);
          return;
        }
        (request as { body: unknown }).body = { kind: "workflow", ...body };
      },
    },
    async (request, reply) => {
      const input = request.body;
      const principal = request.principal;
      const owner = {
        tenantId: principal?.tenant_id ?? null,
        tokenId: submitterId(principal),
        userId: principal?.user_id ?? null,
        unrestrictedOutbound: isPlatformAdmin(principal),
        unconfinedCwd: isPlatformAdmin(principal),
      };
      if (input.kind === "agent") {
        await deps.quotas.checkSubmit(principal);
        const run = await deps.runs.submitAgent(input, owner, { trigger: requestTrigger(request) });
        return reply.code(201).send({ run_id: run.id, status: run.status });
      }
      const badName = Object.keys(input.vars).find((name) => !isVariableName(name));
      if (badName !== undefined) {
        const shown = JSON.stringify(badName.length > 40 ? `${badName.slice(0, 40)}...` : badName);
        throw new RunyardError("INVALID_INPUT", `vars: ${shown} is not a valid variable name`, {
          hint: `Variables travel as environment variables: ${variableNameHint} (as in a workflow's vars:).`,
        });
      }
      // Before anything is stored: a refused submit leaves no run, job or event behind.
      await deps.quotas.checkSubmit(principal);
      const run = await deps.runs.submitWorkflow(
        {
          workflow: input.workflow,
          vars: input.vars,
          ...(input.file ? { file: input.file } : {}),
          ...(input.no_rollback ? { no_rollback: true as const } : {}),
        },
        owner,
        { trigger: requestTrigger(request) },
      );
      return reply.code(201).send({ run_id: run.id, status: run.status });
    },
  );

  api.get(
    "/api/runs",
    {
      schema: {
        operationId: "listRuns",
        summary: "List runs, newest first",
        description: "A tenant's token sees its tenant's runs only.",
        tags: ["runs"],
        querystring: ListRunsQuery,
        response: {
          200: { description: "one page of runs", content: { "application/json": { schema: RunList } } },
          ...protectedErrorResponses(400),
        },
      },
    },
    async (request) => {
      const query = request.query;
      const tenant = tenantScope(request);
      const page = await deps.store.runs.list({
        ...(query.status ? { status: query.status } : {}),
        ...(query.kind ? { kind: query.kind } : {}),
        ...(tenant !== undefined ? { tenantId: tenant } : {}),
        limit: query.limit,
        ...(query.before ? { before: query.before } : {}),
      });
      const names = await submitterNames(
        deps.store,
        page.runs.flatMap((run) => [run.created_by, run.authored_by, run.created_by_user]),
      );
      return { runs: page.runs.map((run) => runView(run, names)), next: page.next ?? null };
    },
  );

  api.get(
    "/api/runs/:id",
    {
      schema: {
        operationId: "getRun",
        summary: "One run",
        description:
          "Status, timestamps, steps, vars and error; a queued run adds `waiting_for`, a workflow run whose approval steps have started waiting adds `approvals`, one whose steps form a graph or have a matrix adds `graph`.",
        tags: ["runs"],
        params: RunParams,
        response: {
          200: { description: "the run", content: { "application/json": { schema: RunView } } },
          ...protectedErrorResponses(404),
        },
      },
    },
    async (request) => {
      const run = await visibleRun(deps, request, request.params.id);
      const stored = storedWorkflow(run);
      const graph = stored && workflowGraph(stored.workflow);
      const names = await submitterNames(deps.store, [run.created_by, run.authored_by, run.created_by_user]);
      const view = run.status === "queued" ? await withWaitingFor(deps, run, names) : runView(run, names);
      const approvals = await approvalViews(deps, request, run);
      const retries = await deps.store.runs.retriesOf(run.id);
      const calls = await calledRuns(deps, run);
      return {
        ...view,
        retries: retries.map((r) => ({
          run_id: r.id,
          status: r.status,
          from: r.retry_from,
          created_at: r.created_at,
        })),
        ...(stored ? { inputs: workflowInputs(stored) } : {}),
        ...(approvals.length > 0 ? { approvals } : {}),
        ...(calls.length > 0 ? { calls } : {}),
        ...(graph ? { graph } : {}),
      };
    },
  );

  api.post(
    "/api/runs/:id/cancel",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "cancelRun",
        summary: "Cancel a run",
        description:
          "A running step gets SIGTERM, then SIGKILL after its kill grace; the answer may come before it has stopped (`canceling`).",
        tags: ["runs"],
        params: RunParams,
        response: {
          200: {
            description: "the run's status after the request",
            content: { "application/json": { schema: CancelAnswer } },
          },
          ...protectedErrorResponses(404, 409),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const shown = await visibleRun(deps, request, id);
      const run = await deps.runs.cancel(id);
      await audit(deps, request, {
        action: "run.cancel",
        target: run.id,
        tenant_id: shown.tenant_id,
        details: { status: run.status },
      });
      // Still going: a runner is stopping a step (SIGTERM, then SIGKILL after its kill grace).
      return { run_id: run.id, status: isFinalStatus(run.status) ? run.status : ("canceling" as const) };
    },
  );

  api.post(
    "/api/runs/:id/stream-token",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "createStreamToken",
        summary: "A short-lived token for one run's event stream",
        description:
          "For browsers, whose EventSource cannot send headers: the token opens `GET /api/runs/:id/events?access_token=` of this run for 5 minutes (never past the end of the session that asked for it), and nothing else. It stops working as soon as the credential that asked for it is revoked.",
        tags: ["runs"],
        params: RunParams,
        response: {
          201: { description: "the stream token", content: { "application/json": { schema: StreamToken } } },
          ...protectedErrorResponses(404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      await visibleRun(deps, request, id);
      const caller = callerOf(request);
      const source = caller.session_id ?? caller.token_id;
      if (source === null)
        throw new RunyardError("FORBIDDEN", "this credential cannot ask for a stream token");
      // A session's stream token ends with the session (API tokens are checked at each use).
      const sessionEnd = caller.session_expires_at ? Date.parse(caller.session_expires_at) : undefined;
      const { token, expires_at } = await deps.sessions.issueStream(
        id,
        source,
        caller.user_id,
        Date.now(),
        sessionEnd,
      );
      return reply.code(201).send({
        token,
        expires_at,
        url: `/api/runs/${encodeURIComponent(id)}/events?access_token=${token}`,
      });
    },
  );

  api.get(
    "/api/runs/:id/events",
    {
      schema: {
        operationId: "streamRunEvents",
        summary: "Follow a run's events (Server-Sent Events)",
        description:
          "Each event is `id: <seq>`, `event: <type>`, `data: <RunEvent as JSON>`; the stream starts with `retry:` and ends after `run.finished`. Resumes after `Last-Event-ID` or `?after=`. The one route that takes `?access_token=`.",
        tags: ["runs"],
        security: bearerOrQueryToken,
        params: RunParams,
        querystring: EventsQuery,
        headers: z.looseObject({
          "last-event-id": z.string().optional().describe("resume after this seq"),
        }),
        response: {
          200: {
            description: "a text/event-stream whose data lines are RunEvents",
            content: { "text/event-stream": { schema: RunEvent } },
          },
          204: z.undefined().describe("the run has ended and has no event after the cursor"),
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const query = request.query;
      const run = await visibleRunState(deps, request, id);
      const header = request.headers["last-event-id"];
      const fromHeader = typeof header === "string" && /^\d+$/.test(header) ? Number(header) : undefined;
      const follow = query.follow === undefined || query.follow === "1" || query.follow === "true";
      const credential = deps.revocations.streamCredential(callerOf(request));
      await streamRunEvents(
        reply,
        { ...deps, streams, credential },
        id,
        fromHeader ?? query.after ?? 0,
        follow,
        run,
      );
      return reply;
    },
  );

  api.get(
    "/run-status",
    {
      schema: {
        operationId: "getRunStatus",
        summary: "A run's snapshot in the workflow runner's shape",
        description: "The run snapshot of the original runner; 404 for an unknown run id.",
        tags: ["runs"],
        querystring: RunStatusQuery,
        response: {
          200: {
            description: "the run snapshot",
            content: { "application/json": { schema: RunStatusSnapshot } },
          },
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request) => {
      const run = await visibleRun(deps, request, request.query.run_id);
      return {
        run_id: run.id,
        workflow_name: run.name,
        status: run.status,
        steps: run.steps,
        vars: run.vars,
        error: run.error,
        created_at: run.created_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        last_notify_error: run.last_notify_error,
      };
    },
  );
}
