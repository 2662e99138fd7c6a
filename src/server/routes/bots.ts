import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { ErrorInfo } from "../../core/events.js";
import { apiSchemas, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { BotControl, BotLogLine, BotParams, BotView, botView } from "../bots/bot-control.js";
import { BotEnvChange, StartBotBody, UpdateBotBody, UpdateWait } from "../bots/bot-spec.js";
import { BotEnvEntry, BotUpdates } from "../bots/bot-updates.js";
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

const BotVersionView = z.object({
  version: z.number().int(),
  state: z
    .enum(["starting", "live", "failed", "replaced"])
    .describe("starting while an update waits for it; live while it runs; failed; replaced by a later one"),
  reason: z.enum(["start", "update", "rollback", "env"]),
  run_id: z.string().nullable().describe("the run of that version's life"),
  image: z.string().nullable(),
  summary: z
    .record(z.string(), z.unknown())
    .describe(
      "its source (no archive bytes, no passwords), env names, stored secrets, restart policy, health check",
    ),
  error: ErrorInfo.nullable().describe(
    "why it failed (BOT_UPDATE_FAILED, with the new container's last lines)",
  ),
  created_by: z.string().nullable(),
  created_at: z.string(),
  finished_at: z.string().nullable(),
});
apiSchemas.add(BotVersionView, { id: "BotVersion" });

const UpdateAnswer = z.object({
  bot: BotView.describe("the bot, now running the new version"),
  version: BotVersionView,
});
const VersionsAnswer = z.object({
  bot: z.string(),
  current: z.number().int(),
  versions: z.array(BotVersionView).describe("newest first"),
});
const EnvAnswer = z.object({ bot: z.string(), version: z.number().int(), env: z.array(BotEnvEntry) });

const updateNote =
  " The new version starts beside the old one (the quota counts the bot once); once healthy (or running for min_ready_secs without a health check) the old one is stopped. If it fails, the old one keeps running and the answer is BOT_UPDATE_FAILED (409) with the new container's last lines.";

/** The bodies an archive upload may reach: base64 of the largest archive, and the rest. */
export function botBodyLimit(maxUploadBytes: number): number {
  return Math.ceil((maxUploadBytes * 4) / 3) + 1024 * 1024;
}

/**
 * Native bot routes (docs/bots.md): start, list, status, logs, stop, remove; and its versions:
 * update, rollback, versions, env ("Updates and rollback", "Environment").
 */
export function botRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const bots = new BotControl(deps);
  const updates = new BotUpdates(deps);

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
        tail,
        since: since && new Date(since).toISOString(),
        build: build === "true" || build === "1",
        grep,
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

  api.post(
    "/api/bots/:name/update",
    {
      bodyLimit: botBodyLimit(deps.botUploadBytes),
      schema: {
        operationId: "updateBot",
        summary: "Update a running bot: new code, archive, image or settings, without stopping it first",
        description: `Any source of a start (files, code, archive, git, image) and any of its settings; what is left out stays.${updateNote}`,
        tags: ["bots"],
        params: BotParams,
        body: UpdateBotBody,
        response: protectedResponses(200, "switched to the new version", UpdateAnswer, 400, 404, 409, 413),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      return auditedUpdate(deps, request, "bot.update", bot.name, () =>
        updates.update(bot, request.body, request.principal),
      );
    },
  );

  api.post(
    "/api/bots/:name/rollback",
    {
      schema: {
        operationId: "rollbackBot",
        summary: "Return a bot to the version before the current one",
        description: `Starts the previous version's source and settings again as a new version.${updateNote}`,
        tags: ["bots"],
        params: BotParams,
        body: UpdateWait.optional(),
        response: protectedResponses(200, "back on the previous version", UpdateAnswer, 400, 404, 409),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      const wait = UpdateWait.parse(request.body ?? {});
      return auditedUpdate(deps, request, "bot.rollback", bot.name, () =>
        updates.rollback(bot, wait, request.principal),
      );
    },
  );

  api.get(
    "/api/bots/:name/versions",
    {
      schema: {
        operationId: "listBotVersions",
        summary: "A bot's versions, newest first",
        tags: ["bots"],
        params: BotParams,
        response: protectedResponses(200, "its versions", VersionsAnswer, 404),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      return { bot: bot.name, current: bot.version, versions: await updates.versions(bot) };
    },
  );

  api.get(
    "/api/bots/:name/env",
    {
      schema: {
        operationId: "getBotEnv",
        summary: "A bot's environment as its running version has it, secrets masked",
        tags: ["bots"],
        params: BotParams,
        response: protectedResponses(200, "its variables", EnvAnswer, 404),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      return { bot: bot.name, version: bot.version, env: await updates.env(bot) };
    },
  );

  api.patch(
    "/api/bots/:name/env",
    {
      schema: {
        operationId: "changeBotEnv",
        summary: "Set or remove variables of a bot's environment: the bot restarts through a safe update",
        description: `Values named in secret are masked from then on and kept sealed with the bot's run.${updateNote}`,
        tags: ["bots"],
        params: BotParams,
        body: BotEnvChange,
        response: protectedResponses(200, "running with the new environment", UpdateAnswer, 400, 404, 409),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      return auditedUpdate(deps, request, "bot.env", bot.name, () =>
        updates.changeEnv(bot, request.body, request.principal),
      );
    },
  );
}

/** The update, audited whether it went through or not (a failed one names its error), as answered. */
async function auditedUpdate(
  deps: ServerDeps,
  request: Parameters<typeof audit>[1],
  action: "bot.update" | "bot.rollback" | "bot.env",
  target: string,
  run: () => ReturnType<BotUpdates["update"]>,
) {
  try {
    const result = await run();
    await audit(deps, request, { action, target, details: { version: result.version.version } });
    return { bot: botView(result.bot), version: result.version };
  } catch (error) {
    await audit(deps, request, {
      action,
      target,
      outcome: "failed",
      details: { error: error instanceof Error ? error.message.split("\n")[0] : String(error) },
    }).catch(() => undefined);
    throw error;
  }
}
