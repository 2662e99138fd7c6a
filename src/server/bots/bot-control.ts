import { z } from "zod";
import { BotHealthReport } from "../../core/bot-health.js";
import { type BotState, botModes, botStates, liveBotStates, upBotStates } from "../../core/bot-states.js";
import { RunyardError } from "../../core/errors.js";
import { ErrorInfo, isFinalStatus } from "../../core/events.js";
import { botSteps } from "../../core/jobs/bot.js";
import type { RunTrigger } from "../../core/run-trigger.js";
import type { BotRecord, Store } from "../../store/index.js";
import { type Principal, submitterId } from "../auth.js";
import type { EventBus } from "../event-bus.js";
import type { Quotas } from "../quotas.js";
import { watchRun } from "../run-watch.js";
import type { RunService } from "../runs/run-service.js";
import type { BotRuns } from "./bot-runs.js";
import type { StartBotBody } from "./bot-spec.js";
import { recordFirstVersion } from "./bot-updates.js";

/**
 * What the bot routes (native `/api/bots` and the `POST /jobs` orchestrator API) do, once: start,
 * find, stop, remove, read logs. A bot is its owner's: the routes find it by the caller's name for
 * it.
 */

/** The limits a bot's container runs under, kept in its stored spec at its start. */
const BotLimits = z.object({
  memory_bytes: z.number().describe("its memory limit"),
  cpus: z.number().describe("how many CPUs it may use"),
});

export const BotView = z.object({
  id: z.string(),
  name: z.string(),
  mode: z.enum(botModes),
  state: z.enum(botStates),
  image: z.string().nullable(),
  runner_id: z.string().nullable(),
  run_id: z
    .string()
    .nullable()
    .describe("the run of its current (or last) life: its events, build and container output"),
  restarts: z.number().int(),
  restart_policy: z.string(),
  exit_code: z.number().int().nullable().describe("of the last container that ended"),
  oom_killed: z.boolean(),
  error: ErrorInfo.nullable(),
  uptime_secs: z.number().nullable().describe("since this life started running; null when not running"),
  memory_bytes: z.number().nullable().describe("the container's memory now (the runner's last heartbeat)"),
  cpu_percent: z.number().nullable().describe("of one CPU, now"),
  stats_at: z.string().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  expires_at: z.string(),
  health: BotHealthReport.nullable().describe(
    "with a health check: the last probe's status, failures in a row and output (masked, at most 1 KiB)",
  ),
  version: z.number().int().describe("the version running now: 1 at its start, one more per update"),
  limits: BotLimits.nullable().describe(
    "its container's limits; null for a bot started before they were kept",
  ),
});
export type BotView = z.infer<typeof BotView>;

/** The path parameters of a route about one bot of the caller's. */
export const BotParams = z.object({ name: z.string().min(1).describe("the bot's name (yours)") });

export function botView(bot: BotRecord, now = Date.now()): BotView {
  const up = (upBotStates as readonly BotState[]).includes(bot.state);
  const running = up && bot.started_at !== null;
  return {
    id: bot.id,
    name: bot.name,
    mode: bot.mode,
    state: bot.state,
    image: bot.image,
    runner_id: bot.runner_id,
    run_id: bot.run_id,
    restarts: bot.restarts,
    restart_policy: bot.restart_policy,
    exit_code: bot.exit_code,
    oom_killed: bot.oom_killed,
    error: bot.error,
    uptime_secs: running ? Math.max(0, Math.round((now - Date.parse(bot.started_at!)) / 1000)) : null,
    memory_bytes: up ? bot.memory_bytes : null,
    cpu_percent: up ? bot.cpu_percent : null,
    stats_at: up ? bot.stats_at : null,
    created_at: bot.created_at,
    started_at: bot.started_at,
    finished_at: bot.finished_at,
    expires_at: bot.expires_at,
    health: bot.health,
    version: bot.version,
    limits: z.object({ limits: BotLimits }).safeParse(bot.spec).data?.limits ?? null,
  };
}

export const BotLogLine = z.object({
  ts: z.string(),
  stream: z.enum(["stdout", "stderr"]),
  text: z.string(),
  step: z.string().describe("run (the container), build or pull"),
  attempt: z.number().int().describe("which container: 1, then one more per restart"),
});
export type BotLogLine = z.infer<typeof BotLogLine>;

export interface BotLogQuery {
  /** The last N lines only. */
  tail?: number;
  /** Lines at or after this ISO time. */
  since?: string;
  /** Build or pull output instead of the container's. */
  build?: boolean;
  /** Only lines holding this text (any case). */
  grep?: string;
}

/** The owner the routes and the quota know a caller by (`local` when auth is off). */
export function botOwner(principal: Principal | undefined): string {
  return principal?.user_id ?? principal?.token_id ?? "local";
}

export class BotControl {
  constructor(
    private readonly deps: {
      store: Pick<Store, "bots" | "botVersions" | "events">;
      bus: EventBus;
      runs: Pick<RunService, "submit" | "cancel">;
      /** The bot run kind (absent: this server runs no bots). */
      bots?: Pick<BotRuns, "submit">;
      quotas: Pick<Quotas, "botStarter">;
      botWatch?: { refusalOf(url: string): RunyardError | undefined };
    },
  ) {}

  async start(
    body: StartBotBody,
    principal: Principal | undefined,
    trigger: RunTrigger,
  ): Promise<{ bot: BotRecord; runId: string }> {
    for (const url of body.notify) {
      const refusal = this.deps.botWatch?.refusalOf(url);
      if (refusal) throw refusal;
    }
    const starter = this.deps.quotas.botStarter(principal);
    if (!this.deps.bots) throw new RunyardError("INVALID_INPUT", "this server does not run bots");
    const { run, bot } = await this.deps.bots.submit(
      this.deps.runs,
      body,
      starter,
      { tenantId: starter.tenantId, tokenId: submitterId(principal) },
      { trigger },
    );
    await recordFirstVersion(this.deps.store, bot, run.id, principal);
    return { bot, runId: run.id };
  }

  /** The caller's bot of that name (a removed one is gone); NOT_FOUND otherwise. */
  async find(principal: Principal | undefined, name: string): Promise<BotRecord> {
    const bot = await this.deps.store.bots.find(principal?.tenant_id ?? null, botOwner(principal), name);
    if (!bot) {
      throw new RunyardError("NOT_FOUND", `you have no bot named ${name}`, {
        hint: "`runyard bot list` shows your bots by name (a removed bot is gone).",
      });
    }
    return bot;
  }

  async list(principal: Principal | undefined): Promise<BotRecord[]> {
    const bots = await this.deps.store.bots.list({
      tenantId: principal?.tenant_id ?? null,
      owner: botOwner(principal),
    });
    return bots.filter((bot) => bot.state !== "removed");
  }

  /**
   * Stops a live bot: its run is canceled, the runner stops the container (SIGTERM, then SIGKILL
   * after 10 s) and removes it. Answers the bot as it is once stopped, or after `waitMs`.
   */
  async stop(bot: BotRecord, waitMs = 15_000): Promise<BotRecord> {
    if (!(liveBotStates as readonly string[]).includes(bot.state) || !bot.run_id) {
      throw new RunyardError("CONFLICT", `bot ${bot.name} is ${bot.state}, not running`, {
        hint: `Start it again with \`runyard bot start ${bot.name} ...\`, or remove it with \`runyard bot rm ${bot.name}\`.`,
      });
    }
    const run = await this.deps.runs.cancel(bot.run_id, waitMs).catch((error: unknown) => {
      // The run ended meanwhile: the bot is whatever that left it.
      if (error instanceof RunyardError && error.code === "CONFLICT") return undefined;
      throw error;
    });
    if (run && !isFinalStatus(run.status)) {
      // CONFLICT, not TIMEOUT: a TIMEOUT is a run's outcome (status 200), which no route can
      // answer as an error (Fastify failed to serialize it: a 500).
      throw new RunyardError(
        "CONFLICT",
        `bot ${bot.name} is still stopping after ${Math.round(waitMs / 1000)} s`,
        {
          hint: "Its runner may be offline: `runyard bot status` shows where it is; the stop goes through when the runner is back.",
        },
      );
    }
    return (await this.deps.store.bots.get(bot.id)) ?? bot;
  }

  /** Stops the bot if it lives, then forgets it: its name is free again. */
  async remove(bot: BotRecord): Promise<BotRecord> {
    const stopped = (liveBotStates as readonly string[]).includes(bot.state) ? await this.stop(bot) : bot;
    const removed = await this.deps.store.bots.update(bot.id, { state: "removed" });
    return removed ?? stopped;
  }

  /**
   * Waits until the bot leaves building and pulling (running, or ended), or `timeoutMs` passed;
   * woken by its run's events, with a slow poll in case a notice from another replica is lost.
   */
  async settled(bot: BotRecord, timeoutMs: number): Promise<BotRecord> {
    const read = async () => (await this.deps.store.bots.get(bot.id)) ?? bot;
    const settled = (now: BotRecord) => now.state !== "building" && now.state !== "pulling";
    if (!bot.run_id) return read();
    return watchRun(this.deps, bot.run_id, timeoutMs, read, settled, (event) => event.type === "bot.state");
  }

  /** The container's (or the build's) output of the bot's current life, from its run's events. */
  async logs(bot: BotRecord, query: BotLogQuery = {}): Promise<{ lines: BotLogLine[]; lastSeq: number }> {
    if (!bot.run_id) return { lines: [], lastSeq: 0 };
    const steps: string[] = query.build ? [botSteps.build, botSteps.pull] : [botSteps.run];
    const lines: BotLogLine[] = [];
    const attempts = new Map<string, number>();
    const needle = query.grep?.toLowerCase();
    let after = 0;
    for (;;) {
      const page = await this.deps.store.events.list(bot.run_id, { after, limit: 5000 });
      for (const event of page) {
        if (event.type === "step.started") attempts.set(event.step, event.attempt);
        if (event.type !== "step.output" || !steps.includes(event.step)) continue;
        if (query.since && event.ts < query.since) continue;
        for (const text of event.data.replace(/\n$/, "").split("\n")) {
          if (needle !== undefined && !text.toLowerCase().includes(needle)) continue;
          lines.push({
            ts: event.ts,
            stream: event.stream,
            text,
            step: event.step,
            attempt: attempts.get(event.step) ?? 1,
          });
        }
        if (query.tail !== undefined && lines.length > query.tail * 2)
          lines.splice(0, lines.length - query.tail);
      }
      after = page.at(-1)?.seq ?? after;
      if (page.length < 5000) break;
    }
    if (query.tail !== undefined && lines.length > query.tail) lines.splice(0, lines.length - query.tail);
    return { lines, lastSeq: after };
  }
}
