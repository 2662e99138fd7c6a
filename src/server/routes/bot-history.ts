import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { type BotSample, resolutionFor, sampleTiers } from "../../store/index.js";
import { BotControl, BotParams } from "../bots/bot-control.js";
import { extrasOf } from "../bots/bot-extras.js";
import { BotAlertSpec } from "../bots/bot-spec.js";
import { effectiveAlertsOf } from "../bots/tenant-alerts.js";
import type { ServerDeps } from "../deps.js";
import { protectedErrorResponses, protectedResponses } from "../error-responses.js";
import { botHookHeader } from "./bot-hook.js";

const weekMs = sampleTiers[sampleTiers.length - 1]!.keepMs;

/** `1h`, `30m`, `7d`, `90s` or an ISO time, as an ISO time at most a week back. */
export function sinceOf(value: string | undefined, now = Date.now()): string {
  if (value === undefined) return new Date(now - 3_600_000).toISOString();
  const relative = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(value.trim());
  let at: number;
  if (relative) {
    const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[relative[2] as "s" | "m" | "h" | "d"];
    at = now - Number(relative[1]) * unit * 1000;
  } else {
    at = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  }
  if (Number.isNaN(at)) {
    throw new RunyardError(
      "INVALID_INPUT",
      `since ${value}: expected a duration like 1h, 30m, 7d, or an ISO time`,
      { hint: "For example since=1h, or since=2026-11-22T10:00:00Z; the history goes back 7 days." },
    );
  }
  return new Date(Math.max(at, now - weekMs)).toISOString();
}

const Sample = z.object({
  at: z.string(),
  cpu_percent: z.number().describe("of one CPU (averaged over the row's span)"),
  memory_bytes: z.number().describe("the highest of the row's span"),
  memory_limit_bytes: z.number().nullable(),
  net_rx_bytes: z.number().describe("received since the container started"),
  net_tx_bytes: z.number().describe("sent since the container started"),
  pids: z.number().int(),
  restarts: z.number().int().describe("restarts of the bot's container in its current life"),
});
const StatsQuery = z.strictObject({
  since: z
    .string()
    .optional()
    .describe("a duration back from now (1h, 30m, 7d) or an ISO time; 1h by default"),
});
const StatsAnswer = z.object({
  bot: z.string(),
  since: z.string(),
  resolution_secs: z
    .number()
    .int()
    .describe("5 within the last hour, 60 within a day, 600 within the week the history is kept"),
  samples: z.array(Sample),
});
const AlertEpisode = z.object({
  id: z.string(),
  kind: z.string(),
  message: z.string(),
  started_at: z.string(),
  ended_at: z.string().nullable().describe("null while the alert holds"),
  notified_at: z.string().nullable(),
  notify_error: z.string().nullable(),
});
const AlertsAnswer = z.object({
  bot: z.string(),
  alerts: z.array(BotAlertSpec).describe("the alerts the bot was started with"),
  notify: z.array(z.string()).describe("where its alerts are told: its own URLs, else its tenant's"),
  inherited: z
    .array(BotAlertSpec)
    .describe("its tenant's alert rules it is watched for too (it has no alert of their kind)"),
  overridden: z
    .array(BotAlertSpec)
    .describe("its tenant's alert rules its own alerts of the same kind replace"),
  notify_inherited: z.boolean().describe("whether `notify` is its tenant's"),
  episodes: z.array(AlertEpisode).describe("newest first, kept 7 days"),
});
const WebhookAnswer = z.object({
  bot: z.string(),
  port: z.number().int().describe("the container port requests go to"),
  path: z.string().describe("POST here (after the server's URL); the secret is its last part"),
  secret: z.string().describe(`or send it in the ${botHookHeader} header to /api/bots/{id}/hook/...`),
});

/** A sample as answered: the bot, its tenant and the resolution are said once, beside the samples. */
function sampleView(row: BotSample): z.infer<typeof Sample> {
  const { bot_id, tenant_id, resolution, ...sample } = row;
  return sample;
}

/** How long the download waits for the bot's runner to send its kept log. */
const logCallMs = 30_000;

/** A bot's resource history, alerts, whole log and webhook address (docs/bots.md). */
export function botHistoryRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const bots = new BotControl(deps);

  api.get(
    "/api/bots/:name/stats",
    {
      schema: {
        operationId: "getBotStats",
        summary: "A bot's CPU, memory, network, pids and restarts over time (kept 7 days)",
        tags: ["bots"],
        params: BotParams,
        querystring: StatsQuery,
        response: protectedResponses(200, "the history", StatsAnswer, 400, 404),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      // One clock read for both: read twice, a millisecond between them made "1h" a span past the
      // hour, answered from the minute rows (none yet for a young bot: an empty chart).
      const now = Date.now();
      const since = sinceOf(request.query.since, now);
      const resolution = resolutionFor(Date.parse(since), now);
      const rows = await deps.store.botHistory.samples(bot.id, resolution, since);
      return { bot: bot.name, since, resolution_secs: resolution, samples: rows.map(sampleView) };
    },
  );

  api.get(
    "/api/bots/:name/alerts",
    {
      schema: {
        operationId: "getBotAlerts",
        summary: "A bot's alerts and the times they held",
        tags: ["bots"],
        params: BotParams,
        response: protectedResponses(200, "the alerts", AlertsAnswer, 404),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      const effective = await effectiveAlertsOf(deps.store, bot);
      const episodes = await deps.store.botHistory.alerts(bot.id);
      return {
        bot: bot.name,
        alerts: effective.own,
        notify: effective.notify,
        inherited: effective.inherited,
        overridden: effective.overridden,
        notify_inherited: effective.notifyInherited,
        episodes: episodes.map(({ bot_id: _bot, tenant_id: _tenant, ...episode }) => episode),
      };
    },
  );

  api.get(
    "/api/bots/:name/webhook",
    {
      schema: {
        operationId: "getBotWebhook",
        summary: "Where a bot takes inbound webhooks, with its secret",
        tags: ["bots"],
        params: BotParams,
        response: protectedResponses(200, "the webhook", WebhookAnswer, 404),
      },
    },
    async (request) => {
      const bot = await bots.find(request.principal, request.params.name);
      const webhook = extrasOf(bot).webhook;
      if (!webhook) {
        throw new RunyardError("NOT_FOUND", `bot ${bot.name} takes no webhooks`, {
          hint: `Start it with \`--webhook PORT\` (the port it listens on inside its container).`,
        });
      }
      return {
        bot: bot.name,
        port: webhook.port,
        path: `/api/bots/${bot.id}/hook/${webhook.secret}`,
        secret: webhook.secret,
      };
    },
  );

  api.get(
    "/api/bots/:name/logs/download",
    {
      schema: {
        operationId: "downloadBotLog",
        summary: "A bot's whole output as its runner keeps it (secrets masked), as a file",
        description:
          "Every container of every life of the bot, `TIME STREAM TEXT` a line, up to the bot's log size (8 MiB by default; the oldest output is rotated out). One download holds the newest 8 MiB at most, after a first line saying older output was left out. Read from the bot's runner, which must be connected.",
        tags: ["bots"],
        params: BotParams,
        response: {
          200: { description: "the log", content: { "text/plain": { schema: z.string() } } },
          ...protectedErrorResponses(404),
        },
      },
    },
    async (request, reply) => {
      const bot = await bots.find(request.principal, request.params.name);
      const got = bot.runner_id
        ? await deps.botRelay.call(bot.runner_id, bot.id, { kind: "log" }, logCallMs)
        : undefined;
      if (!got) {
        throw new RunyardError(
          "BOT_NOT_RUNNING",
          bot.runner_id
            ? `bot ${bot.name}'s runner ${bot.runner_id} is not connected to any server replica`
            : `bot ${bot.name} never ran on a runner: it has no log yet`,
        );
      }
      if (got.error) throw new RunyardError("BOT_NOT_RUNNING", got.error.message);
      return reply
        .type("text/plain; charset=utf-8")
        .header("content-disposition", `attachment; filename="${bot.name}.log"`)
        .send(Buffer.from(got.body_base64, "base64") as unknown as string);
    },
  );
}
