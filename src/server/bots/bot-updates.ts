import { z } from "zod";
import type { BotHealthReport } from "../../core/bot-health.js";
import { type BotState, upBotStates } from "../../core/bot-states.js";
import { errorInfo, RunyardError } from "../../core/errors.js";
import { type ErrorInfo, isFinalStatus } from "../../core/events.js";
import { botSteps } from "../../core/jobs/bot.js";
import { isSecretName } from "../../core/masking.js";
import type { BotRecord, BotVersionReason, BotVersionRecord, Store } from "../../store/index.js";
import { type Principal, submitterId } from "../auth.js";
import type { EventBus } from "../event-bus.js";
import { watchRun } from "../run-watch.js";
import type { RunService } from "../runs/run-service.js";
import { type BotRuns, redacted } from "./bot-runs.js";
import { type BotEnvChange, BotRunSpec, type UpdateBotBody, type UpdateWait } from "./bot-spec.js";

/** How many of the new container's last lines a failed update quotes. */
const failedUpdateLogLines = 30;

/** Longer than any update waits in its request (`timeout_secs` is at most 280 s), with a margin. */
const cutOffAfterMs = 360_000;

/** One variable of a bot's environment as `bot env list` shows it: a secret's value masked. */

/**
 * The first version's summary: the bot's stored spec, but for its webhook's secret (the webhook's
 * own route gives it; a list of versions is no place for it).
 */
function firstSummary(spec: unknown): Record<string, unknown> {
  const { webhook, ...rest } = (spec ?? {}) as Record<string, unknown>;
  const port = (webhook as { port?: unknown } | undefined)?.port;
  return webhook === undefined ? rest : { ...rest, webhook: { port } };
}

export const BotEnvEntry = z.object({
  name: z.string(),
  value: z.string().describe("*** for a secret"),
  secret: z.boolean(),
  stored: z.boolean().describe("a stored secret given by name (runyard secret)"),
});
export type BotEnvEntry = z.infer<typeof BotEnvEntry>;

/** Records a bot's first version; should that fail, `versions` answers it from the bot's record. */
export async function recordFirstVersion(
  store: Pick<Store, "botVersions">,
  bot: BotRecord,
  runId: string,
  principal: Principal | undefined,
): Promise<void> {
  await store.botVersions
    .create({
      bot_id: bot.id,
      version: 1,
      run_id: runId,
      state: "live",
      reason: "start",
      summary: firstSummary(bot.spec),
      created_by: submitterId(principal),
    })
    .catch(() => undefined);
}

/** What the new version's run has said so far, read from its events. */
interface Candidate {
  state?: BotState;
  /** When it last came up `running` (healthy, or up without a health check). */
  runningSince?: number;
  ended: boolean;
  error?: ErrorInfo;
  lastLogs?: string[];
  image?: string;
  containerId?: string;
  runnerId?: string;
  health?: BotHealthReport;
  restarts: number;
  startedAt?: string;
  /** The container's output, newest last (bounded). */
  output: string[];
  after: number;
}

/**
 * Updates that keep the old bot until the new one is healthy (docs/bots.md "Updates and
 * rollback"): the next version's life is a run of its own, beside the current one, on its own
 * container; the bot's record follows only its current run (`ifRun`), so nothing the new version
 * does shows on the bot until it is switched to. Healthy (or, without a health check, running
 * for `min_ready_secs`), the bot switches to it and the old run is stopped; otherwise the new run
 * is stopped, the old one never stopped running, and the update ends BOT_UPDATE_FAILED with the
 * new container's last lines. The bot's record is one all along: the quota counts it once.
 */
export class BotUpdates {
  constructor(
    private readonly deps: {
      store: Pick<Store, "bots" | "botVersions" | "runs" | "events">;
      bus: EventBus;
      runs: Pick<RunService, "submit" | "cancel">;
      /** The bot run kind (absent: this server runs no bots). */
      bots?: Pick<BotRuns, "nextVersion">;
    },
  ) {}

  private botRuns(): Pick<BotRuns, "nextVersion"> {
    if (!this.deps.bots) throw new RunyardError("INVALID_INPUT", "this server does not run bots");
    return this.deps.bots;
  }

  /** `runyard bot update`: a new source and/or settings. */
  async update(bot: BotRecord, body: UpdateBotBody, principal: Principal | undefined) {
    return this.deploy(bot, principal, "update", body, async (current, version) =>
      this.botRuns().nextVersion(current, body, version, bot.tenant_id),
    );
  }

  /** `runyard bot rollback`: the version before the current one, started again as the next version. */
  async rollback(bot: BotRecord, wait: UpdateWait, principal: Principal | undefined) {
    const versions = await this.deps.store.botVersions.list(bot.id);
    const previous = versions.find((v) => v.version < bot.version && v.state === "replaced" && v.run_id);
    if (!previous) {
      throw new RunyardError("CONFLICT", `bot ${bot.name} has no earlier version to return to`, {
        hint: `\`runyard bot versions ${bot.name}\` lists its versions; only one that ran and was replaced can come back.`,
      });
    }
    const spec = await this.specOf(previous.run_id!, bot.name);
    return this.deploy(
      bot,
      principal,
      "rollback",
      wait,
      async (current, version) => ({ ...spec, expires_at: current.expires_at, version }),
      { rollback_of: previous.version },
    );
  }

  /** `runyard bot env set|unset`: the running version with its environment changed. */
  async changeEnv(bot: BotRecord, change: BotEnvChange, principal: Principal | undefined) {
    const unknownSecret = change.secret.filter((name) => !(name in change.set));
    if (unknownSecret.length > 0) {
      throw new RunyardError(
        "INVALID_INPUT",
        `secret names ${unknownSecret.join(", ")}, which set does not give`,
        { hint: "Give each secret's value in set (the CLI reads it from stdin with --secret)." },
      );
    }
    const both = change.unset.filter((name) => name in change.set);
    if (both.length > 0) {
      throw new RunyardError("INVALID_INPUT", `${both.join(", ")} is both set and unset`, {
        hint: "Set it or unset it, not both.",
      });
    }
    return this.deploy(bot, principal, "env", change, async (current, version) => {
      const missing = change.unset.filter((name) => !(name in current.env));
      if (missing.length > 0) {
        throw new RunyardError("NOT_FOUND", `bot ${bot.name} has no variable ${missing.join(", ")}`, {
          hint: `\`runyard bot env list ${bot.name}\` shows its variables.`,
        });
      }
      const env = { ...current.env, ...change.set };
      for (const name of change.unset) delete env[name];
      const secretEnv = new Set(current.secret_env.filter((name) => name in env));
      for (const name of Object.keys(change.set)) {
        if (change.secret.includes(name)) secretEnv.add(name);
        else secretEnv.delete(name);
      }
      return { ...current, env, secret_env: [...secretEnv], version };
    });
  }

  /** The bot's environment as its running version has it, secrets masked. */
  async env(bot: BotRecord): Promise<BotEnvEntry[]> {
    if (!bot.run_id) return [];
    const spec = await this.specOf(bot.run_id, bot.name);
    const entries: BotEnvEntry[] = Object.entries(spec.env).map(([name, value]) => {
      const secret = spec.secret_env.includes(name) || isSecretName(name);
      return { name, value: secret ? "***" : value, secret, stored: false };
    });
    for (const name of spec.secrets) entries.push({ name, value: "***", secret: true, stored: true });
    return entries.sort((a, b) => a.name.localeCompare(b.name));
  }

  async versions(bot: BotRecord): Promise<BotVersionRecord[]> {
    const versions = await this.deps.store.botVersions.list(bot.id);
    if (versions.length > 0) return versions;
    // A bot started before versions were kept: its one version, as its record says.
    return [
      {
        bot_id: bot.id,
        version: bot.version,
        run_id: bot.run_id,
        state: (upBotStates as readonly BotState[]).includes(bot.state) ? "live" : "replaced",
        reason: "start",
        summary: firstSummary(bot.spec),
        image: bot.image,
        error: null,
        created_by: bot.owner,
        created_at: bot.created_at,
        finished_at: null,
      },
    ];
  }

  private async specOf(runId: string, name: string): Promise<BotRunSpec> {
    const run = await this.deps.store.runs.get(runId);
    const parsed = BotRunSpec.safeParse(run?.spec);
    if (!parsed.success) {
      throw new RunyardError("NOT_FOUND", `the run of that version of bot ${name} is no longer kept`, {
        hint: "Runs older than the server's retention are pruned; update the bot with its source instead.",
      });
    }
    return parsed.data;
  }

  /**
   * Starts the next version beside the current one, waits for it, and switches to it or gives it
   * up; answers the bot (switched) and the version, or throws BOT_UPDATE_FAILED.
   */
  private async deploy(
    bot: BotRecord,
    principal: Principal | undefined,
    reason: BotVersionReason,
    wait: UpdateWait,
    nextSpec: (current: BotRunSpec, version: number) => Promise<BotRunSpec>,
    extraSummary: Record<string, unknown> = {},
  ): Promise<{ bot: BotRecord; version: BotVersionRecord }> {
    const oldRunId = bot.run_id;
    if (!(upBotStates as readonly BotState[]).includes(bot.state) || !oldRunId) {
      throw new RunyardError("CONFLICT", `bot ${bot.name} is ${bot.state}: only a running bot is updated`, {
        hint: `A bot being built waits for its build; a stopped one starts again with \`runyard bot start ${bot.name} ...\`.`,
      });
    }
    const current = await this.specOf(oldRunId, bot.name);
    const store = this.deps.store;
    if (!(await store.botVersions.get(bot.id, bot.version))) {
      // A bot started before versions were kept: its running version is recorded first.
      await recordFirstVersion(store, bot, oldRunId, principal);
    }
    const versions = await store.botVersions.list(bot.id);
    const underWay = await this.unlessCutOff(
      bot,
      versions.find((v) => v.state === "starting"),
    );
    if (underWay) {
      throw new RunyardError(
        "CONFLICT",
        `bot ${bot.name} is being updated already (to version ${underWay.version})`,
        { hint: `Wait for it to end (\`runyard bot versions ${bot.name}\`), then try again.` },
      );
    }
    const number = Math.max(bot.version, versions[0]?.version ?? 0) + 1;
    const spec = await nextSpec(current, number);
    const summary = {
      from_version: bot.version,
      source: redacted(spec.source),
      env_names: Object.keys(spec.env),
      // Names only: a value (a secret's above all) never leaves the run's sealed spec.
      env_changed: Object.keys(spec.env).filter(
        (name) => name in current.env && current.env[name] !== spec.env[name],
      ),
      limits: { memory_bytes: spec.limits.memory_bytes, cpus: spec.limits.cpus },
      secrets: spec.secrets,
      restart: spec.restart,
      ...(spec.health ? { health: spec.health } : {}),
      ...extraSummary,
    };
    try {
      await store.botVersions.create({
        bot_id: bot.id,
        version: number,
        state: "starting",
        reason,
        summary,
        created_by: submitterId(principal),
      });
    } catch (error) {
      throw new RunyardError("CONFLICT", `bot ${bot.name} is being updated already`, {
        hint: "Wait for that update to end, then try again.",
        cause: error,
      });
    }
    let runId: string | undefined;
    try {
      const run = await this.deps.runs.submit(
        "bot",
        { name: `bot ${bot.name} v${number}`, spec, vars: {} },
        { tenantId: bot.tenant_id, tokenId: submitterId(principal) },
        { trigger: "api" },
      );
      runId = run.id;
      await store.botVersions.update(bot.id, number, { run_id: run.id });
      const seen = await this.waitFor(run.id, wait, spec.health !== undefined);
      const ready = seen.state === "running" && !seen.ended && seen.runningSince !== undefined;
      if (!ready) return await this.giveUp(bot, number, run.id, seen, wait);
      // Switched only while the bot still runs the version the update started from.
      const switched = await store.bots.update(
        bot.id,
        {
          run_id: run.id,
          version: number,
          state: "running",
          image: seen.image ?? bot.image,
          container_id: seen.containerId ?? null,
          ...(seen.runnerId ? { runner_id: seen.runnerId } : {}),
          restarts: seen.restarts,
          exit_code: null,
          oom_killed: false,
          error: null,
          health: seen.health ?? null,
          started_at: seen.startedAt ?? new Date().toISOString(),
          finished_at: null,
          memory_bytes: null,
          cpu_percent: null,
          stats_at: null,
        },
        { ifState: upBotStates, ifRun: oldRunId },
      );
      if (!switched) {
        await this.cancel(run.id);
        const failed = errorInfo("CONFLICT", `bot ${bot.name} was stopped while it was being updated`);
        await this.endVersion(bot.id, number, { state: "failed", error: failed });
        throw new RunyardError("CONFLICT", failed.message, {
          hint: `Start it again with \`runyard bot start ${bot.name} ...\`.`,
        });
      }
      await this.endVersion(bot.id, number, { state: "live", image: seen.image ?? null });
      for (const version of versions.filter((v) => v.state === "live")) {
        await store.botVersions.update(bot.id, version.version, { state: "replaced" }, { ifState: ["live"] });
      }
      // The old version goes now; its last words change nothing on the bot (not its run any more).
      await this.cancel(oldRunId);
      const version = (await store.botVersions.get(bot.id, number))!;
      return { bot: switched, version };
    } catch (error) {
      if (error instanceof RunyardError && (error.code === "BOT_UPDATE_FAILED" || error.code === "CONFLICT"))
        throw error;
      if (runId) await this.cancel(runId);
      const failed = errorInfo("INTERNAL", error instanceof Error ? error.message : String(error));
      await this.endVersion(bot.id, number, { state: "failed", error: failed }, true).catch(() => undefined);
      throw error;
    }
  }

  /** The new version did not become ready: it is stopped, the old one goes on, the caller is told why. */
  private async giveUp(
    bot: BotRecord,
    number: number,
    runId: string,
    seen: Candidate,
    wait: UpdateWait,
  ): Promise<never> {
    await this.cancel(runId);
    const lines = (seen.lastLogs && seen.lastLogs.length > 0 ? seen.lastLogs : seen.output).slice(
      -failedUpdateLogLines,
    );
    const why = seen.ended
      ? `its container ended ${seen.state ?? "before it ran"}${seen.error ? ` (${seen.error.code}: ${seen.error.message.split("\n")[0]})` : ""}`
      : seen.state === "unhealthy" || seen.health?.status === "unhealthy"
        ? `its health check failed: ${seen.health?.output ?? ""}`
        : seen.state === "starting"
          ? `its health check did not pass within ${wait.timeout_secs} s${seen.health ? `: ${seen.health.output}` : ""}`
          : seen.state === "running"
            ? `it did not keep running for ${wait.min_ready_secs} s within ${wait.timeout_secs} s`
            : `it was still ${seen.state ?? "queued"} after ${wait.timeout_secs} s`;
    const message =
      `the update of bot ${bot.name} to version ${number} failed: ${why}; version ${bot.version} keeps running` +
      (lines.length > 0
        ? `\nlast logs of the new container:\n${lines.map((line) => `  ${line}`).join("\n")}`
        : "");
    const error = errorInfo("BOT_UPDATE_FAILED", message);
    await this.endVersion(bot.id, number, { state: "failed", error, image: seen.image ?? null });
    throw new RunyardError("BOT_UPDATE_FAILED", message);
  }

  /** Follows the new version's run until it is ready, has ended, or the wait is over. */
  private async waitFor(runId: string, wait: UpdateWait, hasHealth: boolean): Promise<Candidate> {
    const seen: Candidate = { ended: false, restarts: 0, output: [], after: 0 };
    const minReadyMs = hasHealth ? 0 : wait.min_ready_secs * 1000;
    const ready = () =>
      seen.ended ||
      (seen.state === "running" &&
        seen.runningSince !== undefined &&
        Date.now() - seen.runningSince >= minReadyMs);
    const read = async () => {
      for (;;) {
        const page = await this.deps.store.events.list(runId, { after: seen.after, limit: 1000 });
        for (const event of page) {
          if (event.type === "run.started" && event.runner_id) seen.runnerId = event.runner_id;
          if (event.type === "run.finished") {
            seen.ended = true;
            seen.error ??= event.error;
          }
          if (event.type === "step.output" && event.step === botSteps.run) {
            seen.output.push(...event.data.replace(/\n$/, "").split("\n"));
            if (seen.output.length > 200) seen.output.splice(0, seen.output.length - 100);
          }
          if (event.type !== "bot.state") continue;
          if (seen.ended) {
            seen.lastLogs ??= event.last_logs;
            continue;
          }
          if (event.restarts) {
            // A restart is a container that failed: an update wants one that keeps running.
            seen.ended = true;
            seen.state = "crashed";
            seen.lastLogs = event.last_logs;
            seen.error =
              event.error ??
              errorInfo(
                "BOT_RESTART_LOOP",
                `the new container ${event.oom_killed ? "ran out of memory" : `exited ${event.exit_code ?? "-"}`} and was restarted`,
              );
            continue;
          }
          if (event.state === "running" && seen.state !== "running") seen.runningSince = Date.parse(event.ts);
          if (event.state !== "running") seen.runningSince = undefined;
          if ((event.state === "starting" || event.state === "running") && !seen.startedAt)
            seen.startedAt = event.ts;
          seen.state = event.state;
          if (event.image) seen.image = event.image;
          if (event.container_id) seen.containerId = event.container_id;
          if (event.health) seen.health = event.health;
          if (event.restarts !== undefined) seen.restarts = event.restarts;
          if (event.error) seen.error = event.error;
          if (event.last_logs) seen.lastLogs = event.last_logs;
          if (
            event.exit_code !== undefined &&
            event.exit_code !== null &&
            !seen.error &&
            event.state === "crashed"
          )
            seen.error = errorInfo("BOT_START_FAILED", `the new container exited ${event.exit_code}`);
          if (["stopped", "crashed", "timeout", "removed"].includes(event.state)) seen.ended = true;
        }
        seen.after = page.at(-1)?.seq ?? seen.after;
        if (page.length < 1000) break;
      }
      return seen;
    };
    const deadline = Date.now() + wait.timeout_secs * 1000;
    for (;;) {
      await watchRun(this.deps, runId, Math.max(0, deadline - Date.now()), read, ready);
      if (ready() || Date.now() >= deadline || this.deps.bus.stopped.aborted) return seen;
    }
  }

  /**
   * An update waits within one request, so one `starting` longer than any request may wait was
   * cut off (its server stopped mid-update): its run is stopped and the version failed, so that
   * the bot can be updated again. Answers the version when it is still under way.
   */
  private async unlessCutOff(
    bot: BotRecord,
    underWay: BotVersionRecord | undefined,
  ): Promise<BotVersionRecord | undefined> {
    if (!underWay || Date.now() - Date.parse(underWay.created_at) < cutOffAfterMs) return underWay;
    if (underWay.run_id) await this.cancel(underWay.run_id);
    const cutOff = errorInfo(
      "BOT_UPDATE_FAILED",
      `the update to version ${underWay.version} was cut off (its server stopped while it waited); the bot kept version ${bot.version}`,
    );
    await this.endVersion(bot.id, underWay.version, { state: "failed", error: cutOff }, true);
    return undefined;
  }

  /** A version's end, live or failed; `ifStarting`: only if it is still starting. */
  private endVersion(
    botId: string,
    version: number,
    end: { state: "live" | "failed"; error?: ErrorInfo; image?: string | null },
    ifStarting = false,
  ) {
    const patch = { ...end, finished_at: new Date().toISOString() };
    return this.deps.store.botVersions.update(
      botId,
      version,
      patch,
      ifStarting ? { ifState: ["starting"] } : {},
    );
  }

  /** Stops a version's run (its container stopped and removed on its runner). */
  private async cancel(runId: string): Promise<void> {
    try {
      const run = await this.deps.runs.cancel(runId, 20_000);
      if (!isFinalStatus(run.status)) return;
    } catch (error) {
      if (error instanceof RunyardError && error.code === "CONFLICT") return;
      throw error;
    }
  }
}
