import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { apiSchemas, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { BotControl, BotLogLine, BotParams, BotView, botView } from "../bots/bot-control.js";
import { StartBotBody } from "../bots/bot-spec.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { IdempotencyKeyHeaders, idempotentRoute, idempotentRouteNote } from "../idempotency.js";
import { requestTrigger } from "../run-trigger.js";

apiSchemas.add(BotView, { id: "Bot" });

const StartAnswer = z.object({
  bot: BotView,
  run_id: z.string().describe("its life's run: follow its events for build progress"),
});
const BotList = z.object({
  bots: z.array(BotView).describe("your bots, oldest first; removed ones are gone"),
});
const StatusAnswer = BotView.extend({
  last_logs: z
    .array(z.string())
    .describe("the last lines of the previous container (kept after a crash, a restart or a stop)"),
});
const LogsQuery = z.strictObject({
  tail: z.coerce.number().int().positive().max(100_000).optional().describe("the last N lines"),
  since: z
    .string()
    .datetime({ offset: true, message: "since is an ISO time, e.g. 2026-11-22T10:00:00Z" })
    .optional(),
  build: z
    .enum(["true", "false", "1", "0"])
    .optional()
    .describe("the build's (or pull's) output instead of the container's"),
  grep: z.string().min(1).max(200).optional().describe("only lines holding this text (any case)"),
});
const LogsAnswer = z.object({
  bot: z.string(),
  run_id: z.string().nullable(),
  lines: z.array(BotLogLine),
  last_seq: z.number().int().describe("follow on from here: GET /api/runs/{run_id}/events?after=last_seq"),
});

/** The bodies an archive upload may reach: base64 of the largest archive, and the rest. */
export function botBodyLimit(maxUploadBytes: number): number {
  return Math.ceil((maxUploadBytes * 4) / 3) + 1024 * 1024;
}

/** Native bot routes (docs/bots.md): start, list, status, logs, stop, remove. */
export function botRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const bots = new BotControl(deps);

  api.post(
    "/api/bots",
    {
      bodyLimit: botBodyLimit(deps.botUploadBytes),
      config: idempotentRoute,
      schema: {
        operationId: "startBot",
        summary: "Start a bot (simple, custom or image)",
        description:
          "Stores the bot and queues its life as a run of kind bot; a runner with Docker builds or pulls its image and starts its hardened container. The per-user quota (3 by default) is checked before anything is built: QUOTA_EXCEEDED. A stopped bot of the same name is replaced." +
          idempotentRouteNote,
        tags: ["bots"],
        headers: IdempotencyKeyHeaders,
        body: StartBotBody,
        response: protectedResponses(202, "stored and queued", StartAnswer, 400, 409, 413, 429),
      },
    },
    async (request, reply) => {
      const { bot, runId } = await bots.start(request.body, request.principal, requestTrigger(request));
      await audit(deps, request, {
        action: "bot.start",
        target: bot.name,
        details: { bot_id: bot.id, mode: bot.mode, run_id: runId },
      });
      return reply.code(202).send({ bot: botView(bot), run_id: runId });
    },
  );

  api.get(
    "/api/bots",
    {
      schema: {
        operationId: "listBots",
        summary: "Your bots",
        tags: ["bots"],
        response: protectedResponses(200, "your bots", BotList),
      },
    },
    async (request) => ({ bots: (await bots.list(request.principal)).map((bot) => botView(bot)) }),
  );

  api.get(
    "/api/bots/:name",
    {
      schema: {
        operationId: "getBot",
        summary: "A bot's status: state, uptime, restarts, exit code, memory and CPU now",
        tags: ["bots"],
        params: BotParams,
        response: protectedResponses(200, "the bot", StatusAnswer, 404),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      return { ...botView(bot), last_logs: bot.last_logs ? bot.last_logs.split("\n") : [] };
    },
  );

  api.get(
    "/api/bots/:name/logs",
    {
      schema: {
        operationId: "getBotLogs",
        summary: "A bot's container output (or its build's), from its events",
        description:
          "Every container of the bot's current life, restarts included (`attempt`). To follow, read the run's events from `last_seq` on (SSE).",
        tags: ["bots"],
        params: BotParams,
        querystring: LogsQuery,
        response: protectedResponses(200, "the lines", LogsAnswer, 400, 404),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      const { tail, since, build, grep } = request.query;
      const { lines, lastSeq } = await bots.logs(bot, {
        ...(tail !== undefined ? { tail } : {}),
        ...(since !== undefined ? { since: new Date(since).toISOString() } : {}),
        build: build === "true" || build === "1",
        ...(grep !== undefined ? { grep } : {}),
      });
      return { bot: bot.name, run_id: bot.run_id, lines, last_seq: lastSeq };
    },
  );

  api.post(
    "/api/bots/:name/stop",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "stopBot",
        summary: "Stop a bot: SIGTERM, SIGKILL after 10 s, container removed",
        tags: ["bots"],
        params: BotParams,
        response: protectedResponses(200, "the bot, stopped", BotView, 404, 409),
      },
    },
    async (request) => {
      const bot = await bots.stop(await bots.find(request.principal, request.params.name));
      await audit(deps, request, { action: "bot.stop", target: bot.name, details: { bot_id: bot.id } });
      return botView(bot);
    },
  );

  api.delete(
    "/api/bots/:name",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "removeBot",
        summary: "Remove a bot (stopping it first): its name is free again",
        tags: ["bots"],
        params: BotParams,
        response: protectedResponses(200, "the bot, removed", BotView, 404, 409),
      },
    },
    async (request) => {
      const bot = await bots.remove(await bots.find(request.principal, request.params.name));
      await audit(deps, request, { action: "bot.rm", target: bot.name, details: { bot_id: bot.id } });
      return botView(bot);
    },
  );
}
