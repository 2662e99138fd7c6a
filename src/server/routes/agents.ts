import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { agentNames } from "../../agents/registry.js";
import { errorInfo, RunyardError } from "../../core/errors.js";
import { AgentSummary, ErrorInfo, isFinalStatus, RunStatus } from "../../core/events.js";
import type { RunRecord } from "../../store/index.js";
import { maxNameLength } from "../api-schemas.js";
import { callerOf, type Principal, submitterId } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { errorResponses, jsonResponse, protectedResponses } from "../error-responses.js";
import {
  IdempotencyKeyHeaders,
  idempotentRoute,
  idempotentRouteNote,
  idempotentWaitingRoute,
} from "../idempotency.js";
import { publicRoute } from "../openapi.js";
import { requestTrigger } from "../run-trigger.js";
import { watchRun } from "../run-watch.js";
import { maxPromptLength } from "../runs/agent-spec.js";
import { visibleRun } from "./visible-run.js";

const RunParams = z.object({ id: z.string().min(1).describe("the agent run to continue") });

const MessageBody = z.strictObject({
  text: z
    .string()
    .min(1, "text is empty: say what the agent should do next")
    .max(maxPromptLength, `text is at most ${maxPromptLength} characters (256 KiB)`),
});

const FollowUpAnswer = z.object({
  run_id: z.string().describe("the new turn's run"),
  parent_run_id: z.string(),
  status: RunStatus,
});

const ChatBody = z.strictObject({
  message: z
    .string()
    .min(1, "message is empty")
    .max(maxPromptLength, `message is at most ${maxPromptLength} characters (256 KiB)`),
  model: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("an agent (claude_code, codex, ...), a family (claude, gpt, gemini) or a model name"),
  agent: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("the agent that answers; else chosen from model"),
  timeout_secs: z.number().int().positive().max(3600).default(300),
});

const ChatAnswer = z.object({
  run_id: z.string(),
  status: RunStatus,
  message: z.string().describe("the agent's answer; empty when it failed"),
  agent: z.string(),
  model: z.string().nullable(),
  usage: z.object({
    input_tokens: z.number().int(),
    output_tokens: z.number().int(),
    cost_usd: z.number().nullable(),
  }),
  error: ErrorInfo.nullable(),
});

const AgentHealth = z.object({
  name: z.string(),
  installed: z.boolean(),
  version: z.string().optional(),
  pinned_version: z.string().optional(),
  credentials: z.boolean().describe("whether a credential is set (never the credential)"),
  usable: z.boolean().describe("whether it can run on the server's own machine"),
  problem: z.string().optional().describe("why it cannot run on the server's own machine"),
  runners: z
    .number()
    .int()
    .describe(
      "connected runners that advertise it: a task for it runs there even when it is not usable here",
    ),
});

const AgentsHealth = z.object({
  ok: z.boolean().describe("at least one agent is usable here or on a connected runner"),
  agents: z
    .array(AgentHealth)
    .describe("agents on the server's own machine (the local runner of `runyard up`)"),
  on_runners: z
    .array(z.string())
    .describe("the agents connected runners advertise (which runners is for a token: GET /api/runners)"),
});

/** The OpenRunner-style API's `model` to an agent: an agent's name, a model family, or the default agent. */
export function agentForModel(model: string | undefined): { agent: string; model?: string } {
  if (!model) return { agent: "claude_code" };
  if ((agentNames as readonly string[]).includes(model)) return { agent: model };
  if (model === "claude") return { agent: "claude_code" };
  if (/^claude-/.test(model)) return { agent: "claude_code", model };
  if (/^gemini/.test(model)) return { agent: "gemini", ...(model === "gemini" ? {} : { model }) };
  if (/^(gpt|o\d)/.test(model)) return { agent: "codex", model };
  return { agent: "openai", model };
}

/** The run once it has ended, or as it is after `timeoutMs`. */
function runEnd(deps: ServerDeps, runId: string, timeoutMs: number): Promise<RunRecord | undefined> {
  return watchRun(
    deps,
    runId,
    timeoutMs,
    () => deps.store.runs.get(runId),
    (run) => !run || isFinalStatus(run.status),
    (event) => event.type === "run.finished",
  );
}

/**
 * A follow-up turn runs with its run's task settings: the env, secrets and keys its submitter
 * gave. So only that submitter (by the same user, through any of their tokens or sessions, a
 * token revoked since too, or the same token) and admins may send one; a teammate who may see
 * the run may not spend its keys.
 */
export function maySendFollowUp(principal: Principal, parent: RunRecord): boolean {
  if (principal.role === "admin") return true;
  const by = parent.created_by;
  if (by !== null && (by === principal.token_id || by === principal.user_id)) return true;
  // The submitter's user (kept on the run), through any token of theirs, a revoked one too.
  return principal.user_id !== null && principal.user_id === parent.created_by_user;
}

/**
 * The run `id` to continue (or publish, or review) and the caller; refused, with a hint, for
 * anyone but `maySendFollowUp`.
 */
export async function followUpParent(
  deps: Pick<ServerDeps, "store">,
  request: FastifyRequest,
  id: string,
): Promise<{ parent: RunRecord; principal: Principal }> {
  const parent = await visibleRun(deps, request, id);
  const principal = callerOf(request);
  if (maySendFollowUp(principal, parent)) return { parent, principal };
  throw new RunyardError(
    "FORBIDDEN",
    `run ${parent.id} was submitted by someone else; only they may continue it`,
    {
      hint: "A follow-up runs with the first submitter's env, secrets and agent keys: ask them (or an admin) to send it, or submit a new run of your own.",
    },
  );
}

/** Queues `text` as the next turn of `parent`, once the caller's quota allows a run. */
export async function submitFollowUp(
  deps: ServerDeps,
  request: FastifyRequest,
  parent: RunRecord,
  principal: Principal,
  text: string,
): Promise<RunRecord> {
  await deps.quotas.checkSubmit(principal);
  return deps.runs.submitFollowUp(
    parent.id,
    text,
    { tenantId: parent.tenant_id, tokenId: submitterId(principal) },
    { trigger: requestTrigger(request) },
  );
}

export function agentRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    "/api/runs/:id/messages",
    {
      config: idempotentRoute,
      schema: {
        operationId: "sendRunMessage",
        summary: "Continue an agent run with a follow-up message",
        description:
          "Queues the next turn as a new run: each agent resumes its session in the same workspace (the branch as the last turn left it) on the same runner, with the task settings (env, secrets) of the run. The run must have ended; 409 while it runs. Only the run's submitter and admins may send one; anyone else gets 403 FORBIDDEN." +
          idempotentRouteNote,
        tags: ["agents"],
        headers: IdempotencyKeyHeaders,
        params: RunParams,
        body: MessageBody,
        response: protectedResponses(201, "the next turn is queued", FollowUpAnswer, 400, 404, 409, 429),
      },
    },
    async (request, reply) => {
      const { parent, principal } = await followUpParent(deps, request, request.params.id);
      const run = await submitFollowUp(deps, request, parent, principal, request.body.text);
      return reply.code(201).send({ run_id: run.id, parent_run_id: parent.id, status: run.status });
    },
  );

  api.post(
    "/api/chat",
    {
      // The answer comes when the run ends, or after timeout_secs (and the 2 s below).
      config: idempotentWaitingRoute(
        (request) => ((request.body as z.infer<typeof ChatBody>).timeout_secs + 2) * 1000,
      ),
      schema: {
        operationId: "chat",
        summary: "Ask an agent and wait for its answer (no stream)",
        description:
          "The OpenRunner-style API's non-streaming fallback: runs the message as an agent run in the runner's chat mode and answers when it ends (or after `timeout_secs`, with the run still going). The run and its events stay available by `run_id`." +
          idempotentRouteNote,
        tags: ["agents"],
        headers: IdempotencyKeyHeaders,
        body: ChatBody,
        response: protectedResponses(200, "the agent's answer", ChatAnswer, 400, 429),
      },
    },
    async (request) => {
      const body = request.body;
      const chosen = body.agent
        ? { agent: body.agent, ...(body.model ? { model: body.model } : {}) }
        : agentForModel(body.model);
      const principal = request.principal;
      await deps.quotas.checkSubmit(principal);
      const submitted = await deps.runs.submitAgent(
        {
          kind: "agent",
          agent: chosen.agent,
          prompt: body.message,
          ...(chosen.model ? { model: chosen.model } : {}),
          acceptance_criteria: [],
          extra_args: [],
          env: {},
          secrets: [],
          timeout_secs: body.timeout_secs,
          stall_secs: Math.min(120, body.timeout_secs),
          labels: [],
        },
        { tenantId: principal?.tenant_id ?? null, tokenId: submitterId(principal) },
        { trigger: requestTrigger(request) },
      );
      let run = (await runEnd(deps, submitted.id, body.timeout_secs * 1000 + 2000)) ?? submitted;
      let error = run.error;
      if (!isFinalStatus(run.status) && deps.bus.stopped.aborted) {
        // A stop never cancels work: the run goes on after the server's next start.
        error = errorInfo(
          "SERVER_STOPPING",
          `the server is stopping and the run had not ended (${run.status}); it goes on after the next start`,
        );
      } else if (!isFinalStatus(run.status)) {
        // Nobody waits for the answer any more: the run stops rather than go on unseen.
        run = await deps.runs.cancel(run.id).catch(() => run);
        error = {
          code: "TIMEOUT",
          message: `no answer within ${body.timeout_secs} s (the run was ${submitted.status === "queued" ? "still waiting or working" : "working"}); it was canceled`,
          hint: "Raise timeout_secs, or check GET /health/agents for a runner that has the agent.",
        };
      }
      const summary = await lastSummary(deps, run);
      return {
        run_id: run.id,
        status: run.status,
        message: summary?.final_text ?? "",
        agent: chosen.agent,
        model: summary?.model ?? chosen.model ?? null,
        usage: {
          input_tokens: summary?.input_tokens ?? 0,
          output_tokens: summary?.output_tokens ?? 0,
          cost_usd: summary?.cost_usd ?? null,
        },
        error,
      };
    },
  );

  api.get(
    "/health/agents",
    {
      schema: {
        operationId: "getAgentsHealth",
        summary: "Which agents can run",
        description:
          "No token needed (as in the OpenRunner-style API). Per agent on this machine: installed (path, version), credentials present, usable; and which agents connected runners advertise. Never shows a credential, nor which runners there are.",
        tags: ["server"],
        security: publicRoute,
        response: { 200: jsonResponse("agent availability", AgentsHealth), ...errorResponses() },
      },
    },
    async () => {
      const [agents, runners] = await Promise.all([
        deps.agentsHealth(),
        deps.store.runners.list({ status: "online" }),
      ]);
      // No token here: which runners exist (and whose) is for GET /api/runners.
      const advertised = [
        ...new Set(
          // Only agents runyard has: a tenant's runner names its labels, and this answer is public.
          runners.flatMap((runner) =>
            runner.labels
              .filter((l) => l.startsWith("agent:"))
              .map((l) => l.slice("agent:".length))
              .filter((name) => (agentNames as readonly string[]).includes(name)),
          ),
        ),
      ].sort();
      return {
        ok: agents.some((a) => a.usable) || advertised.length > 0,
        // Where a CLI is installed is for `runyard agents` on the machine, not for anyone asking.
        agents: agents.map(({ path: _path, ...rest }) => ({
          ...rest,
          runners: runners.filter((runner) => runner.labels.includes(`agent:${rest.name}`)).length,
        })),
        on_runners: advertised,
      };
    },
  );
}

/** The agent summary `run.finished` gave, from the stored event. */
async function lastSummary(deps: ServerDeps, run: RunRecord): Promise<AgentSummary | undefined> {
  if (!isFinalStatus(run.status)) return undefined;
  const events = await deps.store.events.list(run.id, { after: Math.max(0, run.last_seq - 1) });
  const finished = events.find((event) => event.type === "run.finished");
  if (finished?.type !== "run.finished") return undefined;
  return finished.agents?.[0] ? AgentSummary.parse(finished.agents[0]) : undefined;
}
