import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { RunStatus } from "../../core/events.js";
import { NoQuery, refuseBodyFields } from "../api-schemas.js";
import { submitterId } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { jsonResponse, protectedErrorResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { requestTrigger } from "../run-trigger.js";
import { AgentRunSpec } from "../runs/agent-spec.js";
import { forgeOfRepo, noForgeFor } from "../runs/run-pull-request.js";
import { followUpParent } from "./agents.js";

const RunParams = z.object({
  id: z.string().min(1).describe("the finished agent run whose branch to publish"),
});

const PublishAnswer = z.object({
  run_id: z.string().describe("the run that pushes (and opens the pull request); follow it as any run"),
  parent_run_id: z.string(),
  status: RunStatus,
  created: z.boolean().describe("false: the run an earlier ask made, answered again"),
});

const publishNote =
  " The run must have ended (409 while it runs); only its submitter and admins may ask (403 FORBIDDEN), and a run one may not see is 404. Asked twice, it answers the first ask's run (200, `created: false`) unless that one failed.";

/** A repo task's run, the caller's to publish; throws what the caller should read. */
async function publishable(deps: ServerDeps, request: FastifyRequest, id: string) {
  const { parent, principal } = await followUpParent(deps, request, id);
  if (parent.kind !== "agent") {
    throw new RunyardError("INVALID_INPUT", `run ${parent.id} is a ${parent.kind} run: it has no branch`, {
      hint: "Push or open a pull request from an agent run on a repo (`runyard runs list --kind agent`).",
    });
  }
  const spec = AgentRunSpec.safeParse(parent.spec);
  const repo = spec.success ? spec.data.repo : undefined;
  if (!repo) {
    throw new RunyardError("INVALID_INPUT", `run ${parent.id} has no repo: it made no branch to push`, {
      hint: "Only an agent run on a repo (`--repo`) has a branch to push or open a pull request from.",
    });
  }
  return { parent, principal, repo };
}

export function runPublishRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  const responses = {
    200: jsonResponse("an earlier ask's run, still going or done", PublishAnswer),
    201: jsonResponse("the run is queued", PublishAnswer),
    ...protectedErrorResponses(400, 404, 409, 429),
  };

  const publishes = [
    {
      path: "/api/runs/:id/push",
      kind: "push",
      operationId: "pushRunBranch",
      summary: "Push a finished agent run's branch (a task submitted without push)",
      description:
        "Queues a run on the runner that keeps the branch: each agent's branch as its last turn left it is pushed to the repo's remote by the same push step as a task with `push` (the task's git token through GIT_ASKPASS). No agent turn, no tests. 400 for a run without a repo.",
    },
    {
      path: "/api/runs/:id/pull-request",
      kind: "pull_request",
      operationId: "openRunPullRequest",
      summary: "Push a finished agent run's branch and open a pull request for it",
      description:
        "As POST /api/runs/{id}/push, and once pushed the server opens a pull (merge) request of each agent's branch against the task's base (the repo's default branch when it named none), through the forge added for the repo (`runyard forge add`; 400 INVALID_INPUT when the tenant has none for it). The run's events say the pull request's URL, and its vars hold `pull_request_url` and `pull_request_number`.",
    },
  ] as const;
  for (const publish of publishes) {
    api.post(
      publish.path,
      {
        config: idempotentRoute,
        preValidation: refuseBodyFields,
        schema: {
          operationId: publish.operationId,
          summary: publish.summary,
          description: publish.description + publishNote + idempotentRouteNote,
          tags: ["agents"],
          headers: IdempotencyKeyHeaders,
          params: RunParams,
          querystring: NoQuery,
          response: responses,
        },
      },
      async (request, reply) => {
        const { parent, principal, repo } = await publishable(deps, request, request.params.id);
        if (publish.kind === "pull_request" && !(await forgeOfRepo(deps.store, parent.tenant_id, repo.url)))
          throw noForgeFor(repo.url);
        await deps.quotas.checkSubmit(principal);
        const published = await deps.runs.submitPublish(
          parent.id,
          publish.kind,
          { tenantId: parent.tenant_id, tokenId: submitterId(principal) },
          { trigger: requestTrigger(request) },
        );
        return reply.code(published.created ? 201 : 200).send({
          run_id: published.run.id,
          parent_run_id: parent.id,
          status: published.run.status,
          created: published.created,
        });
      },
    );
  }
}
