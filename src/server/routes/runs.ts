import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { isFinalStatus, RunEvent, RunKind, RunStatus } from "../../core/events.js";
import { newRunId } from "../../core/ids.js";
import { runTriggers } from "../../core/run-trigger.js";
import { maxNameLength, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf, submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedErrorResponses, protectedResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { bearerOrQueryToken } from "../openapi.js";
import { requestTrigger } from "../run-trigger.js";
import { fromOpenRunnerBody, OpenRunnerRunBody, SubmitAgentRunBody } from "../runs/agent-spec.js";
import { runConfinement } from "../runs/run-confinement.js";
import { type StreamGauge, streamRunEvents } from "../sse.js";
import { agentTurnDetail } from "./agent-turns.js";
import { approvalViews } from "./approvals.js";
import { workflowGraph } from "./run-graph.js";
import { storedWorkflow, workflowInputs } from "./run-inputs.js";
import { submitterNames } from "./run-submitters.js";
import {
  CancelAnswer,
  calledRuns,
  RunList,
  RunStatusSnapshot,
  RunSubmitted,
  RunView,
  runView,
  StreamToken,
  withWaitingFor,
} from "./run-views.js";
import { capSubmitVariables, refuseBadVariableNames, runBodyLimit } from "./submit-limits.js";
import { RunParams, visibleRun, visibleRunState } from "./visible-run.js";

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
  trigger: z
    .enum([...runTriggers, "retry"])
    .optional()
    .describe("what started the runs (`trigger`); `retry`: the runs that retry another (`retry_of`)"),
  limit: z.coerce.number().int().min(1).max(500).default(50).describe("page size"),
  before: z.string().optional().describe("the `next` of the previous page"),
});

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

/**
 * Lets a submitted run's engine go as far as it can before the answer is written: its first job
 * queued and handed to a waiting runner (SQLite answers at once, so that is all one stretch of
 * promises). Answered first, the reply's own work went before the job's, on the runner's path: on
 * a slow two-core host the first byte comes about 1.7 ms sooner this way, and the answer no later.
 */
function engineTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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
        response: protectedResponses(201, "the run is queued", RunSubmitted, 400, 409, 413, 429),
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
        confinement: runConfinement({ submitter: { principal } }),
      };
      // A caller's `traceparent` (tracing on): the run, its id fixed now, joins the caller's trace.
      // Asked only once the submit passed its checks: a refused one leaves nothing in the tracer.
      const origin = () => {
        const runId = deps.tracing?.runIdFor(request, newRunId);
        return { trigger: requestTrigger(request), ...(runId ? { runId } : {}) };
      };
      if (input.kind === "agent") {
        await deps.quotas.checkSubmit(principal);
        const run = await deps.runs.submitAgent(input, owner, origin());
        await engineTurn();
        deps.tracing?.submitted(run.id, request, reply.code(201));
        return reply.code(201).send({ run_id: run.id, status: run.status });
      }
      refuseBadVariableNames(input.vars);
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
        origin(),
      );
      await engineTurn();
      deps.tracing?.submitted(run.id, request, reply.code(201));
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
        response: protectedResponses(200, "one page of runs", RunList, 400),
      },
    },
    async (request) => {
      const query = request.query;
      const tenant = tenantScope(request);
      const page = await deps.store.runs.list({
        ...(query.status ? { status: query.status } : {}),
        ...(query.kind ? { kind: query.kind } : {}),
        ...(query.trigger ? { trigger: query.trigger } : {}),
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
          "Status, timestamps, steps, vars and error; a queued run adds `waiting_for`, a workflow run whose approval steps have started waiting adds `approvals`, and a workflow run adds `graph`, an agent run `agent_turn` with its prompt and the turns after it.",
        tags: ["runs"],
        params: RunParams,
        response: protectedResponses(200, "the run", RunView, 404),
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
      const turn = await agentTurnDetail(deps, run);
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
        ...(turn ? { agent_turn: turn } : {}),
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
        response: protectedResponses(200, "the run's status after the request", CancelAnswer, 404, 409),
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
        response: protectedResponses(201, "the stream token", StreamToken, 404),
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
        response: protectedResponses(200, "the run snapshot", RunStatusSnapshot, 400, 404),
      },
    },
    async (request) => {
      const { spec: _spec, ...run } = await visibleRun(deps, request, request.query.run_id);
      return { ...run, run_id: run.id, workflow_name: run.name };
    },
  );
}
