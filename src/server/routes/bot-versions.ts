import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { ErrorInfo } from "../../core/events.js";
import { apiSchemas } from "../api-schemas.js";
import { audit } from "../audit.js";
import { BotControl, BotParams, BotView, botView } from "../bots/bot-control.js";
import { BotEnvChange, UpdateBotBody, UpdateWait } from "../bots/bot-spec.js";
import { BotEnvEntry, BotUpdates } from "../bots/bot-updates.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { botBodyLimit } from "./bots.js";

export const BotVersionView = z.object({
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

/** Bot versions: update, rollback, versions, env (docs/bots.md "Updates and rollback", "Environment"). */
export function botVersionRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const bots = new BotControl(deps);
  const updates = new BotUpdates(deps);

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
