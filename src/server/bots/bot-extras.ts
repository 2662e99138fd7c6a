import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { BotRecord } from "../../store/index.js";
import { BotAlertSpec, type StartBotBody } from "./bot-spec.js";

/**
 * What a bot's stored spec holds besides its source: its inbound webhook (port and secret), its
 * alerts and where they are sent. The spec is sealed at rest, the secret with it.
 */
export const BotExtras = z.object({
  webhook: z.object({ port: z.number().int(), secret: z.string() }).optional(),
  alerts: z.array(BotAlertSpec).default([]),
  notify: z.array(z.string()).default([]),
});
export type BotExtras = z.infer<typeof BotExtras>;

/** The extras of a new bot: a fresh webhook secret when it takes webhooks. */
export function botExtras(body: StartBotBody): Partial<BotExtras> {
  return {
    ...(body.webhook_port !== undefined
      ? { webhook: { port: body.webhook_port, secret: randomBytes(24).toString("base64url") } }
      : {}),
    ...(body.alerts.length > 0 ? { alerts: body.alerts } : {}),
    ...(body.notify.length > 0 ? { notify: body.notify } : {}),
  };
}

/** A stored bot's extras (none for a bot started before they existed). */
export function extrasOf(bot: BotRecord): BotExtras {
  const parsed = BotExtras.safeParse(bot.spec ?? {});
  return parsed.success ? parsed.data : { alerts: [], notify: [] };
}
