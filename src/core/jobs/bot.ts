import { z } from "zod";
import { BotHealth } from "../bot-health.js";
import { botModes, botStates } from "../bot-states.js";
import { ErrorInfo, type EventInput } from "../events.js";

/**
 * Job kind `bot`: one life of one user's bot on one runner with Docker (docs/bots.md; the
 * avtomatika-bot's bots). The job lasts as long as the bot runs: the runner builds or pulls its
 * image (`step.*` events of step `build` or `pull`), starts its hardened container (step `run`, one
 * attempt per container, its output as `step.output`), says every state change as `bot.state`, and
 * ends with the bot's final state. Stopping the bot is canceling the job.
 */

/** The host of a bot job's steps: the bot's name, so its events read like any run's. */
export const botSteps = { build: "build", pull: "pull", run: "run" } as const;

/** Where a bot's image comes from (the avtomatika-bot's three deploy modes). */
export const BotSource = z.discriminatedUnion("mode", [
  z.object({
    mode: z.literal("simple"),
    /** File name -> text. */
    files: z.record(z.string(), z.string()),
    requirements: z.array(z.string()).default([]),
    entrypoint: z.string(),
  }),
  z.object({
    mode: z.literal("custom"),
    /** A tar (optionally gzipped) or zip archive holding a Dockerfile, base64. */
    archive: z.string().optional(),
    /** Or a git repository holding one: cloned shallow, no submodules. */
    git: z.object({ url: z.string(), ref: z.string().optional() }).optional(),
  }),
  z.object({
    mode: z.literal("image"),
    image: z.string(),
    registry_auth: z
      .object({ username: z.string(), password: z.string(), serveraddress: z.string().optional() })
      .optional(),
  }),
]);
export type BotSource = z.infer<typeof BotSource>;

export const BotRestart = z.object({
  policy: z.enum(["no", "on-failure", "always"]).default("no"),
  max_restarts: z.number().int().nonnegative().default(5),
  backoff_ms: z.number().int().positive().default(1000),
});
export type BotRestart = z.infer<typeof BotRestart>;

export const BotTask = z.object({
  run_id: z.string(),
  bot_id: z.string(),
  /** The bot's name: the host of its steps. */
  name: z.string(),
  owner: z.string(),
  tenant_id: z.string().nullable(),
  source: BotSource,
  /** The container's env, secrets included: only the container ever gets them. */
  env: z.record(z.string(), z.string()).default({}),
  limits: z.object({
    memory_bytes: z.number().int().positive(),
    cpus: z.number().positive(),
    pids: z.number().int().positive(),
  }),
  network: z.string(),
  restart: BotRestart,
  expires_at: z.string(),
  /** A later job of the same life (its runner came back): a container of it may be running, to adopt. */
  adopt: z.boolean().default(false),
  /** Values masked in everything the runner sends back. */
  secrets: z.array(z.string()).default([]),
  /** Its health check, if it has one. */
  health: BotHealth.optional(),
  /**
   * Which version of the bot this is (1 at its start, one more per update, rollback or env
   * change): each version's container has a name of its own, so a new one runs beside the old.
   */
  version: z.number().int().positive().default(1),
  /** The cap of the bot's whole output kept on its runner for download (rotated past it). */
  log_max_bytes: z.number().int().positive().optional(),
});
export type BotTask = z.infer<typeof BotTask>;

export const BotJob = z.object({
  job_id: z.string(),
  kind: z.literal("bot"),
  payload: BotTask,
});
export type BotJob = z.infer<typeof BotJob>;

/** How one life of a bot ended. */
export const BotJobResult = z.object({
  kind: z.literal("bot"),
  status: z.enum(["success", "failed", "canceled", "timeout"]),
  error: ErrorInfo.optional(),
  bot_id: z.string(),
  state: z.enum(botStates),
  mode: z.enum(botModes).optional(),
  image: z.string().optional(),
  exit_code: z.number().int().nullable().default(null),
  oom_killed: z.boolean().default(false),
  restarts: z.number().int().nonnegative().default(0),
});
export type BotJobResult = z.infer<typeof BotJobResult>;

const botEventTypes = new Set<EventInput["type"]>([
  "bot.state",
  "step.started",
  "step.output",
  "step.finished",
  "notice",
]);

/** Whether a runner may report `event` for this bot job: its states, and steps on its own bot. */
export function botJobMaySend(job: BotJob, event: EventInput): boolean {
  if (!botEventTypes.has(event.type)) return false;
  if (event.type === "bot.state") return event.bot_id === job.payload.bot_id;
  if ("host" in event && event.host !== undefined) return event.host === job.payload.name;
  return true;
}

export function botEndedEarly(botId: string, status: "failed" | "canceled", error: ErrorInfo): BotJobResult {
  return {
    kind: "bot",
    status,
    error,
    bot_id: botId,
    state: status === "canceled" ? "stopped" : "crashed",
    exit_code: null,
    oom_killed: false,
    restarts: 0,
  };
}
