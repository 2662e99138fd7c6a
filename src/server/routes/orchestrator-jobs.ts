import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { errorInfo, RunyardError } from "../../core/errors.js";
import { ErrorInfo } from "../../core/events.js";
import { audit } from "../audit.js";
import { BotControl, botView } from "../bots/bot-control.js";
import { StartBotBody } from "../bots/bot-spec.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRouteNote, idempotentWaitingRoute } from "../idempotency.js";
import { requestTrigger } from "../run-trigger.js";
import { botBodyLimit } from "./bots.js";

/**
 * The `POST /jobs` orchestrator API, unchanged: `{"blueprint":"bot_runner","data":{"action":
 * "start"|"stop"|"logs"|"list"|"status", "bot_id", ...}}`. Answers `{"status":"success","data"}`
 * or `{"status":"failure","error":{"code","message","hint"}}`; validation errors carry a hint,
 * as the orchestrator's validator's do.
 */

const actions = ["start", "stop", "logs", "list", "status"] as const;

const OrchestratorJobBody = z.strictObject({
  blueprint: z.string(),
  data: z.record(z.string(), z.unknown()).default({}),
});

const OrchestratorJobData = z.strictObject({
  action: z.enum(actions, { message: `action is one of ${actions.join(", ")}` }),
  bot_id: z.string().optional(),
  deployment_mode: z.enum(["simple", "custom", "image"]).optional(),
  code: z.string().optional(),
  files: z.record(z.string(), z.string()).optional(),
  entrypoint: z.string().optional(),
  requirements: z.array(z.string()).optional(),
  env_vars: z.record(z.string(), z.string()).optional(),
  archive: z.string().optional(),
  git_url: z.string().optional(),
  git_ref: z.string().optional(),
  docker_image: z.string().optional(),
  registry_auth: z
    .object({ username: z.string(), password: z.string(), server: z.string().optional() })
    .optional(),
  restart_policy: z.enum(["no", "on-failure", "always"]).optional(),
  tail: z.number().int().positive().optional(),
  wait_secs: z.number().int().nonnegative().max(600).optional(),
});
type OrchestratorJobData = z.infer<typeof OrchestratorJobData>;

/** How long a start waits for its bot when `wait_secs` does not say. */
const defaultWaitSecs = 120;

/** How long a request may wait before it is answered (a start's `wait_secs`), for its Idempotency-Key. */
function answerWaitMs(request: FastifyRequest): number {
  const body = request.body as z.infer<typeof OrchestratorJobBody>;
  const wait = OrchestratorJobData.shape.wait_secs.safeParse(body.data.wait_secs);
  return ((wait.success ? wait.data : undefined) ?? defaultWaitSecs) * 1000;
}

const OrchestratorAnswer = z.object({
  status: z
    .enum(["success", "failure"])
    .describe("failure: the bot was started and crashed; `error` says why"),
  error: ErrorInfo.optional(),
  job_id: z.string().describe("the run carrying the request (start: the bot's life)"),
  data: z.unknown(),
});

function failure(deps: ServerDeps, reply: FastifyReply, error: unknown) {
  if (!(error instanceof RunyardError)) {
    deps.logger.error({ err: error }, "POST /jobs request failed");
    return reply.code(500).send({ status: "failure", error: errorInfo("INTERNAL", "internal error") });
  }
  return reply.code(Math.max(error.status, 400)).send({ status: "failure", error: error.toInfo() });
}

/** The native body of an orchestrator API start; what that API names differently is translated here. */
function startBody(data: OrchestratorJobData, name: string): StartBotBody {
  const mode = data.deployment_mode;
  const needs = {
    simple: ["code", "files"],
    custom: ["archive", "git_url"],
    image: ["docker_image"],
  } as const;
  if (mode && !needs[mode].some((field) => data[field] !== undefined)) {
    throw new RunyardError(
      "INVALID_INPUT",
      `data.${needs[mode].join(" or data.")} is required in ${mode} mode`,
      { hint: hintFor(mode) },
    );
  }
  const parsed = StartBotBody.safeParse({
    name,
    ...(data.files ? { files: data.files } : {}),
    ...(data.code !== undefined ? { code: data.code } : {}),
    ...(data.entrypoint ? { entrypoint: data.entrypoint } : {}),
    requirements: data.requirements ?? [],
    ...(data.archive ? { archive: data.archive } : {}),
    ...(data.git_url ? { git: { url: data.git_url, ...(data.git_ref ? { ref: data.git_ref } : {}) } } : {}),
    ...(data.docker_image ? { image: data.docker_image } : {}),
    ...(data.registry_auth ? { registry: data.registry_auth } : {}),
    env: data.env_vars ?? {},
    ...(data.restart_policy ? { restart: data.restart_policy } : {}),
    ...(mode ? { mode } : {}),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".") || "data";
    throw new RunyardError("INVALID_INPUT", `data.${field === "name" ? "bot_id" : field}: ${issue.message}`, {
      hint: hintFor(mode),
    });
  }
  return parsed.data;
}

/** The orchestrator's validator answers with an example of the mode asked for. */
function hintFor(mode: string | undefined): string {
  switch (mode) {
    case "custom":
      return 'custom mode takes "archive" (base64 tar/zip with a Dockerfile) or "git_url": {"action":"start","bot_id":"my-bot","deployment_mode":"custom","git_url":"https://github.com/user/bot.git"}';
    case "image":
      return 'image mode takes "docker_image": {"action":"start","bot_id":"my-bot","deployment_mode":"image","docker_image":"ghcr.io/user/bot:v1","env_vars":{"BOT_TOKEN":"..."}}';
    default:
      return 'simple mode takes "code" (or "files") and "requirements": {"action":"start","bot_id":"my-bot","deployment_mode":"simple","code":"import os ...","requirements":["aiogram>=3.0"],"env_vars":{"BOT_TOKEN":"..."}}';
  }
}

export function orchestratorJobRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const bots = new BotControl(deps);

  api.post(
    "/jobs",
    {
      bodyLimit: botBodyLimit(deps.botUploadBytes),
      config: idempotentWaitingRoute(answerWaitMs),
      schema: {
        operationId: "botRunnerJob",
        summary: "The orchestrator API's bot_runner blueprint: start, stop, logs, list, status",
        description:
          'Answers `{"status":"success","job_id","data"}`, or `{"status":"failure","error":{"code","message","hint"}}` with the error\'s HTTP status. `start` waits (up to `wait_secs`, 120 by default) for the bot to run or fail, as the orchestrator\'s worker answers after starting the container.' +
          idempotentRouteNote,
        tags: ["bots"],
        headers: IdempotencyKeyHeaders,
        body: OrchestratorJobBody,
        response: protectedResponses(200, "done", OrchestratorAnswer, 400, 404, 409, 413, 429),
      },
    },
    async (request, reply) => {
      try {
        if (request.body.blueprint !== "bot_runner") {
          throw new RunyardError(
            "INVALID_INPUT",
            `unknown blueprint ${JSON.stringify(request.body.blueprint)}`,
            {
              hint: 'This server has the bot_runner blueprint: {"blueprint":"bot_runner","data":{"action":"list"}}.',
            },
          );
        }
        const parsed = OrchestratorJobData.safeParse(request.body.data);
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          throw new RunyardError(
            "INVALID_INPUT",
            `data.${issue.path.join(".") || "action"}: ${issue.message}`,
            { hint: hintFor(undefined) },
          );
        }
        const data = parsed.data;
        const principal = request.principal;
        if (data.action === "list") {
          const list = await bots.list(principal);
          return { status: "success" as const, job_id: "", data: { bots: list.map((bot) => botView(bot)) } };
        }
        if (!data.bot_id) {
          throw new RunyardError("INVALID_INPUT", `data.bot_id is required for ${data.action}`, {
            hint: `E.g. {"blueprint":"bot_runner","data":{"action":"${data.action}","bot_id":"my-bot"}}.`,
          });
        }
        switch (data.action) {
          case "start": {
            const { bot, runId } = await bots.start(
              startBody(data, data.bot_id),
              principal,
              requestTrigger(request),
            );
            await audit(deps, request, {
              action: "bot.start",
              target: bot.name,
              details: { bot_id: bot.id, mode: bot.mode, run_id: runId },
            });
            const settled = await bots.settled(bot, (data.wait_secs ?? defaultWaitSecs) * 1000);
            if (settled.state === "crashed") {
              const error = settled.error ?? { code: "BOT_START_FAILED", message: `bot ${bot.name} crashed` };
              return reply.code(200).send({
                status: "failure",
                error: { ...error, hint: error.hint ?? `Read its logs: runyard bot logs ${bot.name}` },
                job_id: runId,
                data: botView(settled),
              });
            }
            return { status: "success" as const, job_id: runId, data: botView(settled) };
          }
          case "stop": {
            const bot = await bots.stop(await bots.find(principal, data.bot_id));
            await audit(deps, request, { action: "bot.stop", target: bot.name, details: { bot_id: bot.id } });
            return { status: "success" as const, job_id: bot.run_id ?? "", data: botView(bot) };
          }
          case "status": {
            const bot = await bots.find(principal, data.bot_id);
            return {
              status: "success" as const,
              job_id: bot.run_id ?? "",
              data: { ...botView(bot), last_logs: bot.last_logs ? bot.last_logs.split("\n") : [] },
            };
          }
          case "logs": {
            const bot = await bots.find(principal, data.bot_id);
            const { lines } = await bots.logs(bot, { tail: data.tail ?? 100 });
            return {
              status: "success" as const,
              job_id: bot.run_id ?? "",
              data: { bot_id: bot.name, logs: lines.map((line) => line.text).join("\n"), lines },
            };
          }
        }
      } catch (error) {
        return failure(deps, reply, error);
      }
    },
  );
}
