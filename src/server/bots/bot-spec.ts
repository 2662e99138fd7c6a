import { z } from "zod";
import { BotHealth } from "../../core/bot-health.js";
import { isImageId } from "../../core/container-policy.js";
import { BotRestart, BotSource } from "../../core/jobs/bot.js";
import { maxNameLength } from "../api-schemas.js";

/**
 * What a bot start asks for, as submitted (`POST /api/bots`, the orchestrator API's `POST /jobs`
 * `{"blueprint":"bot_runner"}`, `runyard bot start`), and the spec its run stores sealed.
 */

/** A value of a bot's `env`: what the kernel takes of one environment string. */
const maxBotEnvValueLength = 128 * 1024;

export const envName = z
  .string()
  .max(maxNameLength)
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]*$/,
    "an environment variable name: letters, digits and _, not starting with a digit",
  );

export const botName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
    "a bot name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. echo-bot)",
  );

/** A git source: https, http, ssh, git or file; never `ext::` (a command) or an option. */
const gitUrl = z
  .string()
  .min(1)
  .refine((url) => !url.startsWith("-"), { message: "a git URL cannot start with '-'" })
  .refine((url) => !/^[a-z][a-z0-9+.-]*::/i.test(url), {
    message: "a git URL with a transport helper (ext::, fd::, ...) is refused: it would run a command",
  })
  .refine((url) => !/^[a-z][a-z0-9+.-]*:\/\/[^/@]*@/i.test(url) || /^ssh:\/\/[^/:@]+@/i.test(url), {
    message: "the git URL holds credentials; clone a public URL or use an image instead",
  });

/** One alert of a bot (docs/bots.md "Resource history and alerts"). */
export const BotAlertSpec = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("memory"),
    above_percent: z.number().gt(0).max(100).describe("of the container's memory limit"),
    for_secs: z
      .number()
      .int()
      .min(0)
      .max(86_400)
      .default(300)
      .describe("held this long (every sample above)"),
  }),
  z.strictObject({
    kind: z.literal("restart_loop"),
    restarts: z.number().int().min(1).max(100).default(3),
    within_secs: z.number().int().min(10).max(86_400).default(600),
  }),
  z.strictObject({ kind: z.literal("unhealthy") }),
]);
export type BotAlertSpec = z.infer<typeof BotAlertSpec>;

/** Where a bot's alerts are POSTed: up to 5 http(s) URLs. */
export const BotNotifyUrls = z
  .array(
    z
      .string()
      .url()
      .refine((url) => /^https?:\/\//.test(url), "a notify URL is http:// or https://"),
  )
  .max(5);

/** The native body of a bot start. The mode is the one source given: files/code, archive/git, or image. */
export const StartBotBody = z.strictObject({
  name: botName,
  mode: z.enum(["simple", "custom", "image"]).optional().describe("else told by the source given"),
  files: z
    .record(z.string().min(1), z.string())
    .optional()
    .describe("simple: file name -> text (the avtomatika-bot CLI's --simple FILES)"),
  code: z
    .string()
    .optional()
    .describe(
      "simple: one file's text (the `code` of the `POST /jobs` orchestrator API), saved as the entrypoint",
    ),
  entrypoint: z.string().min(1).optional().describe("simple: the file to run; .py runs Python, .js Node"),
  requirements: z.array(z.string()).default([]).describe("simple: pip (Python) or npm (Node) package specs"),
  archive: z
    .string()
    .min(1)
    .optional()
    .describe("custom: a tar, tar.gz or zip with a Dockerfile at its top, base64"),
  git: z
    .strictObject({
      url: gitUrl,
      ref: z
        .string()
        .regex(/^[A-Za-z0-9._/-]{1,200}$/)
        .optional(),
    })
    .optional()
    .describe("custom: a repository with a Dockerfile at its top, cloned shallow without submodules"),
  image: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/, "an image reference such as ghcr.io/user/bot:v1")
    .refine((ref) => !isImageId(ref), {
      message:
        "an image id (or hex digits alone, which Docker reads as one) is not a reference: give the image's name and tag (e.g. ghcr.io/user/bot:v1)",
    })
    .optional()
    .describe("image: the reference to run"),
  registry: z
    .strictObject({
      username: z.string().min(1),
      password: z.string().min(1),
      server: z.string().min(1).optional(),
    })
    .optional()
    .describe("image: credentials of a private registry (stored sealed; never in a log)"),
  env: z
    .record(
      z.string().max(maxNameLength),
      z
        .string()
        .max(maxBotEnvValueLength, "an environment variable's value is at most 131072 characters (128 KiB)")
        .refine((value) => !value.includes("\0"), "an environment variable's value cannot hold a NUL byte"),
    )
    .superRefine((env, ctx) => {
      for (const name of Object.keys(env)) {
        if (!envName.safeParse(name).success) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            message: `${JSON.stringify(name.slice(0, 80))} is not an environment variable name: letters, digits and _, not starting with a digit`,
          });
        }
      }
    })
    .default({})
    .describe("the container's environment (the avtomatika-bot CLI's -e K=V)"),
  secrets: z
    .array(envName)
    .max(100)
    .default([])
    .describe("names of stored secrets given to the container as env"),
  secret_env: z
    .array(envName)
    .max(1000)
    .default([])
    .describe("names in env whose values are secrets: masked in every log and listing"),
  health: BotHealth.optional().describe(
    "a health check: the bot is starting until it passes, unhealthy after `retries` failures in a row",
  ),
  restart: BotRestart.shape.policy.describe("restart on a crash (on-failure), always, or never (no)"),
  max_restarts: z.number().int().nonnegative().max(100).default(5),
  lifetime_secs: z.number().int().positive().optional().describe("at most the server's bot lifetime (24 h)"),
  group: z.string().min(1).max(maxNameLength).optional().describe("the runner group whose Docker runs it"),
  labels: z.array(z.string().max(maxNameLength)).max(50).default([]),
  webhook_port: z
    .number()
    .int()
    .min(1, "webhook_port is a port number from 1 to 65535")
    .max(65_535, "webhook_port is a port number from 1 to 65535")
    .optional()
    .describe(
      "the container port that inbound webhooks (`POST /api/bots/{id}/hook/...`) are forwarded to; the bot gets a secret of its own for them",
    ),
  alerts: z.array(BotAlertSpec).max(10).default([]).describe("when to call the `notify` URLs about this bot"),
  notify: BotNotifyUrls.default([]).describe(
    "URLs the bot's alerts are POSTed to (the server's `notify_hosts:` rules apply)",
  ),
  log_max_mb: z
    .number()
    .int()
    .min(1, "log_max_mb is 1 to 1024 (MiB)")
    .max(1024, "log_max_mb is 1 to 1024 (MiB)")
    .optional()
    .describe(
      "the size of the whole log its runner keeps for download (8 MiB by default); older output is rotated out",
    ),
});
export type StartBotBody = z.infer<typeof StartBotBody>;

/** A bot run's stored spec (sealed): the bot and everything its job needs but stored secrets. */
export const BotRunSpec = z.object({
  bot_id: z.string(),
  name: z.string(),
  owner: z.string(),
  source: BotSource,
  env: z.record(z.string(), z.string()),
  secrets: z.array(z.string()),
  limits: z.object({ memory_bytes: z.number(), cpus: z.number(), pids: z.number() }),
  network: z.string(),
  restart: BotRestart,
  expires_at: z.string(),
  group: z.string().optional(),
  labels: z.array(z.string()),
  secret_env: z.array(z.string()).default([]),
  health: BotHealth.optional(),
  /** Which version of the bot this life is. */
  version: z.number().int().positive().default(1),
  log_max_bytes: z.number().int().positive().optional(),
});
export type BotRunSpec = z.infer<typeof BotRunSpec>;

/**
 * A bot update (`POST /api/bots/{name}/update`, `runyard bot update`): a new source (the same
 * modes as a start) and any of the settings; what is left out stays as the running version has it.
 */
const start = StartBotBody.shape;
export const UpdateBotBody = z.strictObject({
  mode: start.mode,
  files: start.files,
  code: start.code,
  entrypoint: start.entrypoint,
  requirements: start.requirements.unwrap().optional().describe("simple: pip or npm package specs"),
  archive: start.archive,
  git: start.git,
  image: start.image,
  registry: start.registry,
  env: start.env
    .unwrap()
    .optional()
    .describe("the container's whole environment (replaces the running version's)"),
  secrets: start.secrets
    .unwrap()
    .optional()
    .describe("names of stored secrets given to the container as env"),
  secret_env: start.secret_env.unwrap().optional().describe("names in env whose values are secrets"),
  health: start.health,
  restart: start.restart
    .unwrap()
    .optional()
    .describe("restart on a crash (on-failure), always, or never (no)"),
  max_restarts: start.max_restarts.unwrap().optional(),
  min_ready_secs: z
    .number()
    .int()
    .min(0)
    .max(3600)
    .default(10)
    .describe("without a health check: how long the new version must run before the old one is stopped"),
  timeout_secs: z
    .number()
    .int()
    .min(10)
    .max(280)
    .default(240)
    .describe(
      "how long to wait for the new version (build included) before giving up on it; the answer comes within it",
    ),
});
export type UpdateBotBody = z.infer<typeof UpdateBotBody>;

/** How long an update waits for its new version, the same for updates, rollbacks and env changes. */
export const UpdateWait = z.strictObject({
  min_ready_secs: UpdateBotBody.shape.min_ready_secs,
  timeout_secs: UpdateBotBody.shape.timeout_secs,
});
export type UpdateWait = z.infer<typeof UpdateWait>;

/** `PATCH /api/bots/{name}/env`: variables to set (values of those named in secret marked secret) and to remove. */
export const BotEnvChange = z
  .strictObject({
    set: StartBotBody.shape.env.describe("name -> value"),
    secret: z
      .array(envName)
      .default([])
      .describe("names in set whose values are secrets: masked from now on"),
    unset: z.array(envName).default([]).describe("names to remove"),
  })
  .extend(UpdateWait.shape);
export type BotEnvChange = z.infer<typeof BotEnvChange>;
