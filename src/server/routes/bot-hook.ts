import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { extrasOf } from "../bots/bot-extras.js";
import { defaultHookRate, HookLimiter } from "../bots/hook-limiter.js";
import type { ServerDeps } from "../deps.js";
import { errorResponses } from "../error-responses.js";
import { secretMatches } from "../hooks/hook-signature.js";
import { publicRoute } from "../openapi.js";
import { rawBodyScope, unheldSecret } from "./raw-body.js";

/** The largest body a bot's webhook takes. */
export const maxBotHookBodyBytes = 1024 * 1024;
/** The header that may carry a bot's webhook secret instead of the path. */
export const botHookHeader = "x-runyard-hook-secret";
/** Telegram's `setWebhook` `secret_token`, sent back in this header: taken as the secret too. */
const telegramHeader = "x-telegram-bot-api-secret-token";
/** How long the bot's runner and the bot have to answer, together. */
const hookCallMs = 20_000;

/** Request headers never passed to the bot: credentials of runyard and hop-by-hop ones. */
const dropped = new Set([
  "host",
  "authorization",
  "cookie",
  "connection",
  "content-length",
  "transfer-encoding",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "proxy-authorization",
  "proxy-connection",
  botHookHeader,
  telegramHeader,
]);

const HookParams = z.object({
  name: z
    .string()
    .min(1)
    .max(100)
    .describe(
      "named as the other routes of /api/bots/{name} name the place, but here it is the bot's id (`runyard bot webhook NAME` prints the whole path)",
    ),
  "*": z.string().describe("the secret first (unless sent in a header), then the path the bot gets"),
});

/**
 * `POST /api/bots/ID/hook/SECRET/...` (or `/api/bots/ID/hook/...` with the secret in
 * `X-Runyard-Hook-Secret` or Telegram's `X-Telegram-Bot-Api-Secret-Token`): no token, the bot's
 * own secret is the credential. The request goes over the bot's runner's link into the bot's
 * container, to the port it was started with, and the bot's answer comes back.
 */
export function botHookRoute(app: FastifyInstance, deps: ServerDeps): void {
  const rate = deps.botHookRate;
  const limiter = new HookLimiter(deps.store, rate);
  rawBodyScope(app, maxBotHookBodyBytes, (scope) =>
    scope.withTypeProvider<ZodTypeProvider>().post(
      "/api/bots/:name/hook/*",
      {
        bodyLimit: maxBotHookBodyBytes,
        schema: {
          operationId: "deliverBotHook",
          summary: "Send an inbound webhook to a bot (no token: the bot's webhook secret is the credential)",
          description: `Forwarded to the port the bot was started with (\`--webhook PORT\`) inside its container, through its runner; the bot's answer (status, body, and its content-type, cache-control, location, retry-after, etag, last-modified and content-language headers) is the answer. The secret is the first part after \`hook/\`, or is sent in \`${botHookHeader}\` (or Telegram's \`${telegramHeader}\`, as \`setWebhook\`'s \`secret_token\` makes it) with the path after \`hook/\` passed to the bot as is. No secret is 401; a wrong one, or an id with no such bot, is 404 and nothing is forwarded. Bodies up to ${maxBotHookBodyBytes / 1024 / 1024} MiB (413 past it); ${defaultHookRate.burst} requests a bot within ${defaultHookRate.windowSecs} whole seconds unless the server sets another rate (\`RUNYARD_BOT_HOOK_BURST\`, \`RUNYARD_BOT_HOOK_WINDOW_SECS\`), counted across every server replica (429 with Retry-After past it).`,
          tags: ["bots"],
          security: publicRoute,
          params: HookParams,
          body: z.unknown().describe("passed to the bot as sent"),
          response: {
            200: {
              description: "the bot's answer (any status the bot gives)",
              content: { "application/octet-stream": { schema: z.string() } },
            },
            ...errorResponses(401, 404, 413, 429, 502),
          },
        },
      },
      async (request, reply) => {
        const id = request.params.name;
        const rest = request.params["*"];
        const header = request.headers[botHookHeader] ?? request.headers[telegramHeader];
        const fromHeader = typeof header === "string" ? header : undefined;
        const [first = "", ...after] = rest.split("/");
        const given = fromHeader ?? first;
        const path = `/${fromHeader !== undefined ? rest : after.join("/")}`;
        if (given === "") {
          throw new RunyardError("UNAUTHORIZED", "the request carries no webhook secret", {
            hint: `POST to the path \`runyard bot webhook NAME\` prints (its last part is the secret), or send the secret in ${botHookHeader}.`,
          });
        }
        const bot = await deps.store.bots.get(id);
        const webhook = bot && bot.state !== "removed" ? extrasOf(bot).webhook : undefined;
        // A bot without a webhook is checked against a secret nobody holds, in the same time.
        const matches = secretMatches(given, webhook?.secret ?? unheldSecret);
        if (!bot || !webhook || !matches) {
          throw new RunyardError("NOT_FOUND", "no bot takes webhooks at this address", {
            hint: "Check the path and secret with `runyard bot webhook NAME`; a bot started again keeps its secret only while it is not removed.",
          });
        }
        const wait = await limiter.take(bot.id);
        if (wait > 0) {
          throw new RunyardError(
            "RATE_LIMITED",
            `bot ${bot.name} takes at most ${rate.burst} webhooks within ${rate.windowSecs === 1 ? "a second" : `${rate.windowSecs} seconds`}, counted across every server replica`,
            {
              hint: "Send it again after the Retry-After seconds.",
              details: { retry_after_seconds: wait },
            },
          );
        }
        const query = request.url.includes("?") ? request.url.slice(request.url.indexOf("?")) : "";
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(request.headers)) {
          if (value === undefined || dropped.has(name) || name.startsWith("x-runyard-")) continue;
          headers[name] = Array.isArray(value) ? value.join(", ") : value;
        }
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const answer =
          bot.state === "running" && bot.runner_id
            ? await deps.botRelay.call(
                bot.runner_id,
                bot.id,
                {
                  kind: "hook",
                  port: webhook.port,
                  method: "POST",
                  path: `${path}${query}`,
                  headers,
                  body_base64: body.toString("base64"),
                },
                hookCallMs,
              )
            : undefined;
        if (!answer) {
          throw new RunyardError(
            "BOT_NOT_RUNNING",
            bot.state === "running"
              ? `bot ${bot.name}'s runner is not connected to any server replica`
              : `bot ${bot.name} is ${bot.state}`,
          );
        }
        if (answer.error) {
          throw new RunyardError(
            answer.error.code === "BOT_NOT_RUNNING" ? "BOT_NOT_RUNNING" : "BOT_HOOK_FAILED",
            answer.error.message,
          );
        }
        // An informational or made-up status is no answer a caller can take (Fastify throws on
        // one past 599): the bot's fault, said as such.
        if (!Number.isInteger(answer.status) || answer.status < 200 || answer.status > 599) {
          throw new RunyardError(
            "BOT_HOOK_FAILED",
            `bot ${bot.name} answered its webhook with HTTP status ${answer.status}, not a final status (200 to 599)`,
            { hint: "Have the bot answer its webhook with a status from 200 to 599." },
          );
        }
        // Any status the bot gives, its body as bytes (Fastify serializes no Buffer).
        return reply
          .code(answer.status as 200)
          .headers(answer.headers)
          .send(Buffer.from(answer.body_base64, "base64") as unknown as string);
      },
    ),
  );
}
