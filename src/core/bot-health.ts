import { z } from "zod";

/**
 * A bot's health check (docs/bots.md "Health checks"): a command run inside its container, or an
 * HTTP GET its runner makes to a port of the container, every `interval_ms`; `retries` failures in
 * a row make it `unhealthy`. Failures within `start_period_ms` of the container's start do not
 * count. Durations in milliseconds.
 */
export const BotHealth = z
  .strictObject({
    cmd: z
      .string()
      .min(1)
      .max(4096)
      .refine((cmd) => !cmd.includes("\0"), "a health command cannot hold a NUL byte")
      .optional()
      .describe("run as `sh -c CMD` inside the container: exit 0 is healthy"),
    http: z
      .strictObject({
        port: z.number().int().min(1).max(65_535),
        path: z
          .string()
          .regex(
            /^\/[\x21-\x7e]{0,1023}$/,
            "an HTTP path starts with / and holds no spaces or control characters",
          ),
      })
      .optional()
      .describe("GET http://127.0.0.1:PORT/PATH inside the container's network: 2xx or 3xx is healthy"),
    interval_ms: z.number().int().min(1000).max(86_400_000).default(30_000),
    timeout_ms: z.number().int().min(100).max(600_000).default(5000),
    retries: z.number().int().min(1).max(100).default(3),
    start_period_ms: z.number().int().min(0).max(3_600_000).default(0),
  })
  .refine((health) => (health.cmd === undefined) !== (health.http === undefined), {
    message: "a health check is either cmd or http: give exactly one",
  });
export type BotHealth = z.infer<typeof BotHealth>;

/** The most of a probe's output kept and shown (its last bytes). */
export const maxProbeOutputChars = 1024;

/** What the last probe found, as the bot's record and its `bot.state` events carry it. */
export const BotHealthReport = z.object({
  status: z.enum(["starting", "healthy", "unhealthy"]),
  /** Failures in a row (counted once the start period is over). */
  failures: z.number().int().nonnegative(),
  /** The last probe's output (or why it failed), masked, at most 1 KiB. */
  output: z.string().max(maxProbeOutputChars * 4),
  /** When the last probe ended. */
  at: z.string(),
});
export type BotHealthReport = z.infer<typeof BotHealthReport>;
