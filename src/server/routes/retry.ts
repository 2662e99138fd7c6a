import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { workflowSpecConfinement } from "../../core/confinement.js";
import { RunyardError } from "../../core/errors.js";
import { RunStatus } from "../../core/events.js";
import type { RunRecord } from "../../store/index.js";
import type { Workflow } from "../../workflow/model.js";
import { instanceNames } from "../../workflow/retry-plan.js";
import { mayActFor } from "../acting-for.js";
import { maxNameLength, refuseBodyFields } from "../api-schemas.js";
import { submitterId } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { runConfinement } from "../runs/run-confinement.js";
import { parsedWorkflow } from "../runs/workflow-parser.js";
import { planRetry, type RetryAsk } from "../runs/workflow-retries.js";
import { WorkflowRunSpec } from "../runs/workflow-runs.js";
import { capSubmitVariables, refuseBadVariableNames, runBodyLimit } from "./submit-limits.js";
import { RunParams, visibleRun } from "./visible-run.js";

const RetryBody = z.strictObject({
  from: z
    .string()
    .max(maxNameLength)
    .optional()
    .describe(
      "the step to run again from; default the first step that did not succeed. Every step that succeeded and does not come after it (in a graph: does not depend on it) is kept",
    ),
  workflow: z
    .string()
    .min(1, "workflow is empty: send the edited YAML text, or leave workflow out")
    .optional()
    .describe(
      "an edited workflow text that replaces the run's: the kept steps are kept where it still has them, the others run as it says. A step that reads an export no kept step made is refused at its line:column",
    ),
  file: z.string().max(maxNameLength).optional().describe("the edited file's name, shown in its messages"),
  vars: z
    .record(z.string().max(maxNameLength), z.coerce.string())
    .default({})
    .describe("variables laid over the run's"),
});

const RunStepBody = z.strictObject({
  step: z.string().min(1).max(maxNameLength).describe("the step to run, with every export of the run"),
});

const RetryPlanQuery = z.strictObject({
  from: RetryBody.shape.from,
});

const RetryPlanView = z.object({
  from: z.string().describe("the step the retry would run from"),
  kept: z.array(z.string()).describe("the steps (matrix combinations by name) it would keep, in file order"),
  again: z.array(z.string()).describe("the steps it would run again"),
});

const RunWorkflowText = z.object({
  workflow: z.string().describe("the workflow text the run ran"),
  file: z.string().describe("the file name it was submitted as"),
});

const RunSubmitted = z.object({ run_id: z.string(), status: RunStatus });

const RetrySubmitted = z.object({
  run_id: z.string(),
  status: RunStatus,
  retry_of: z.string().describe("the run retried"),
  from: z.string().describe("the step the retry runs from (run-step: the one step it runs)"),
  kept: z.array(z.string()).describe("the steps (matrix combinations by name) kept from the run retried"),
});

/**
 * Re-run (issue 11's run page): the server submits a workflow run's stored workflow and vars
 * again, as the API never gives the submitted text back (its vars may hold values a teammate
 * should not read). Retry from a step (`runs retry`) and run one step (`runs run-step`): a new run
 * linked to the first (`retry_of`), keeping the outcomes and exports of the steps that need not
 * run again.
 */
export function retryRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    "/api/runs/:id/rerun",
    {
      preValidation: refuseBodyFields,
      config: idempotentRoute,
      schema: {
        operationId: "rerunRun",
        summary: "Run a workflow run's workflow again",
        description:
          "Queues a new run of the same workflow text and vars, triggered by the caller and written by the first run's author, with the lesser rights of the two (quotas apply as to `POST /api/runs`). Agent and bot runs are 400." +
          idempotentRouteNote,
        tags: ["runs"],
        headers: IdempotencyKeyHeaders,
        params: RunParams,
        response: protectedResponses(201, "the new run is queued", RunSubmitted, 400, 404, 409, 429),
      },
    },
    async (request, reply) => {
      const run = await visibleRun(deps, request, request.params.id);
      // A re-run runs the whole workflow: a retry's kept steps are not carried over.
      const { retry: _kept, ...whole } = workflowSpecOf(run, "re-run");
      const principal = request.principal;
      await deps.quotas.checkSubmit(principal);
      const next = await deps.runs.submitWorkflow(
        whole,
        {
          tenantId: principal?.tenant_id ?? null,
          tokenId: submitterId(principal),
          // The lesser rights of the caller and whoever wrote the text: a platform admin's re-run
          // of a member's workflow gets a member's, not an admin's.
          confinement: runConfinement({
            submitter: { principal },
            earlier: workflowSpecConfinement.read(whole),
          }),
        },
        { trigger: "rerun", ref: run.id, authoredBy: run.authored_by, ...savedOf(run) },
      );
      return reply.code(201).send({ run_id: next.id, status: next.status });
    },
  );
  api.post(
    "/api/runs/:id/retry",
    {
      bodyLimit: runBodyLimit,
      config: idempotentRoute,
      preValidation: capSubmitVariables,
      schema: {
        operationId: "retryRun",
        summary: "Retry a finished workflow run from a step",
        description:
          "Queues a new run linked to this one (`retry_of`) that keeps the outcomes and exports of every step that succeeded and is not downstream of `from`, and runs the rest; with `workflow`, an edited text runs instead. A queued or running run is 409; another tenant's is 404. With `workflow` or `vars`, only the run's submitter or an admin of its tenant may retry it (403); unchanged, anyone who may see it. The retry is triggered by the caller and has the lesser rights of the caller and whoever wrote its text." +
          idempotentRouteNote,
        tags: ["runs"],
        headers: IdempotencyKeyHeaders,
        params: RunParams,
        body: RetryBody,
        response: protectedResponses(201, "the retry is queued", RetrySubmitted, 400, 403, 404, 409, 429),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const changed = body.workflow !== undefined || Object.keys(body.vars).length > 0;
      const ask: RetryAsk = {
        ...(body.from !== undefined ? { from: body.from } : {}),
        ...(body.workflow !== undefined
          ? { edited: { text: body.workflow, file: body.file ?? "workflow.yaml" } }
          : {}),
        vars: body.vars,
      };
      const answer = await submitRetry(deps, request, request.params.id, ask, changed);
      return reply.code(201).send(answer);
    },
  );
  api.get(
    "/api/runs/:id/retry-plan",
    {
      schema: {
        operationId: "getRetryPlan",
        summary: "What a retry from a step would keep and run again",
        description:
          "Plans `POST /api/runs/:id/retry` with the same `from` and stores nothing: the steps it would keep and those it would run again, for a page to show before the retry starts. A queued or running run is 409; another tenant's is 404.",
        tags: ["runs"],
        params: RunParams,
        querystring: RetryPlanQuery,
        response: protectedResponses(200, "the plan", RetryPlanView, 400, 404, 409),
      },
    },
    async (request) => {
      const run = await visibleRun(deps, request, request.params.id);
      const spec = workflowSpecOf(run, "retry");
      const parsing = { parse: deps.parseWorkflow, limits: deps.workflowLimits };
      let workflow: Workflow | undefined;
      const plan = await planRetry(
        deps.store,
        async (text, file) => {
          workflow = await parsedWorkflow(parsing, text, file);
          return workflow;
        },
        run,
        spec,
        request.query.from !== undefined ? { from: request.query.from } : {},
      );
      const kept = new Set(plan.retry.kept.map((k) => k.step));
      const names = (workflow?.steps ?? []).flatMap(instanceNames);
      return {
        from: plan.from,
        kept: names.filter((name) => kept.has(name)),
        again: names.filter((name) => !kept.has(name)),
      };
    },
  );
  api.get(
    "/api/runs/:id/workflow",
    {
      schema: {
        operationId: "getRunWorkflow",
        summary: "The workflow text a run ran, to edit and retry it",
        description:
          "Only the run's submitter or an admin of its tenant may read it (403), as only they may retry it edited; another tenant's run is 404. The run's vars are never given back.",
        tags: ["runs"],
        params: RunParams,
        response: protectedResponses(200, "the text", RunWorkflowText, 400, 403, 404),
      },
    },
    async (request) => {
      const run = await visibleRun(deps, request, request.params.id);
      const spec = workflowSpecOf(run, "retry");
      await mayEdit(deps, request, run);
      return { workflow: spec.workflow, file: spec.file ?? "workflow.yaml" };
    },
  );
  api.post(
    "/api/runs/:id/run-step",
    {
      config: idempotentRoute,
      schema: {
        operationId: "runRunStep",
        summary: "Run one step of a finished workflow run again",
        description:
          "Queues a new run linked to this one (`retry_of`) that runs only `step`, with every variable the run exported; no other step runs. A queued or running run is 409; another tenant's is 404. The new run is triggered by the caller and has the lesser rights of the caller and the run's author." +
          idempotentRouteNote,
        tags: ["runs"],
        headers: IdempotencyKeyHeaders,
        params: RunParams,
        body: RunStepBody,
        response: protectedResponses(201, "the one-step run is queued", RetrySubmitted, 400, 404, 409, 429),
      },
    },
    async (request, reply) => {
      const answer = await submitRetry(deps, request, request.params.id, { only: request.body.step }, false);
      return reply.code(201).send(answer);
    },
  );
}

async function submitRetry(
  deps: ServerDeps,
  request: FastifyRequest,
  id: string,
  ask: RetryAsk,
  changed: boolean,
): Promise<z.output<typeof RetrySubmitted>> {
  const run = await visibleRun(deps, request, id);
  const spec = workflowSpecOf(run, "retry");
  const principal = request.principal;
  if (changed) await mayEdit(deps, request, run);
  refuseBadVariableNames(ask.vars ?? {});
  const parsing = { parse: deps.parseWorkflow, limits: deps.workflowLimits };
  const plan = await planRetry(
    deps.store,
    (text, file) => parsedWorkflow(parsing, text, file),
    run,
    spec,
    ask,
  );
  await deps.quotas.checkSubmit(principal);
  const edited = ask.edited !== undefined;
  const next = await deps.runs.submitWorkflow(
    {
      workflow: plan.workflow,
      vars: plan.vars,
      ...(plan.file ? { file: plan.file } : {}),
      ...(spec.no_rollback ? { no_rollback: true as const } : {}),
      retry: plan.retry,
    },
    {
      // The run's tenant: its kept steps, secrets and runners are that tenant's.
      tenantId: run.tenant_id,
      tokenId: submitterId(principal),
      // The lesser rights of the caller and whoever wrote the text: an edited text is the caller's.
      confinement: runConfinement({
        submitter: { principal },
        ...(edited ? {} : { earlier: workflowSpecConfinement.read(spec) }),
      }),
    },
    {
      trigger: "rerun",
      ref: run.id,
      authoredBy: edited ? submitterId(principal) : run.authored_by,
      ...(edited ? {} : savedOf(run)),
      retry: { of: run.id, from: plan.from },
    },
  );
  return {
    run_id: next.id,
    status: next.status,
    retry_of: run.id,
    from: plan.from,
    kept: [...new Set(plan.retry.kept.filter(() => !plan.retry.only).map((k) => k.step))],
  };
}

/** Only the run's submitter, or an admin of its tenant, may read its text or retry it changed. */
async function mayEdit(deps: ServerDeps, request: FastifyRequest, run: RunRecord): Promise<void> {
  const principal = request.principal;
  // The submitter's user, through any token of theirs: one revoked since made the run too.
  if (principal?.user_id != null && principal.kind !== "stream" && principal.user_id === run.created_by_user)
    return;
  if (principal && (await mayActFor(deps.store, principal, run.created_by, run.tenant_id))) return;
  throw new RunyardError(
    "FORBIDDEN",
    `only whoever submitted run ${run.id}, or an admin of its tenant, may read its workflow or retry it with an edited workflow or vars`,
    { hint: "Retry it unchanged (no workflow, no vars), or submit a run of your own." },
  );
}

function workflowSpecOf(run: RunRecord, verb: "re-run" | "retry"): WorkflowRunSpec {
  const spec = run.kind === "workflow" ? WorkflowRunSpec.safeParse(run.spec) : undefined;
  if (!spec?.success) {
    throw new RunyardError(
      "INVALID_INPUT",
      `run ${run.id} is a ${run.kind} run: only workflow runs ${verb}`,
      {
        hint: "Start agent tasks and bots again with POST /api/runs or the bots API.",
      },
    );
  }
  return spec.data;
}

/** The saved workflow and version `run` ran, for the run that runs its text again. */
function savedOf(run: RunRecord) {
  return run.saved_workflow !== null && run.saved_version !== null
    ? { saved: { name: run.saved_workflow, version: run.saved_version } }
    : {};
}
