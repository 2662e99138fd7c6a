import { join } from "node:path";
import { type BotStateChange, BotSupervisor } from "../../bots/bot-supervisor.js";
import type { BotState } from "../../core/bot-states.js";
import { type ErrorCode, errorInfo, errorTable, toErrorInfo } from "../../core/errors.js";
import type { ErrorInfo, EventInput } from "../../core/events.js";
import { type BotJob, type BotJobResult, type BotTask, botSteps } from "../../core/jobs/bot.js";
import { SecretMasker, secretsFromEnv } from "../../core/masking.js";
import { type BotCall, type BotReply, type BotStats, botReplyPartBytes } from "../../core/protocol.js";
import { type DockerEngine, ImageBuildError } from "../../exec/docker/docker-engine.js";
import { forwardHook } from "./bot-hook.js";
import { type BotImageDeps, prepareBotImage } from "./bot-image.js";
import { BotLogFile } from "./bot-log-file.js";
import { botErrorReply, detachReason, type JobHandler, type JobIo } from "./types.js";

export interface BotHandlerDeps extends BotImageDeps {
  engine: DockerEngine;
  /** Extra labels on every bot container (the runner's and its install's), asked at each start. */
  labels?: () => Record<string, string>;
  /** Where each bot's whole (masked) output is kept for download; `<workDir>/logs` if unset. */
  logDir?: string;
  /** How often held bots are sampled (`RUNYARD_BOT_STATS_SECS`; 5 s if unset). */
  statsIntervalMs?: number;
}

/** One bot a runner holds now, for its heartbeats' stats. */
export interface HeldBot {
  botId: string;
  supervisor: BotSupervisor;
}

/** How often the held bots' containers are sampled for status's memory and CPU, by default. */
const defaultStatsIntervalMs = 5000;

/** Samples of one bot kept while the server is away (5 minutes of them). */
const maxUnsentSamples = 60;

const finalStates: ReadonlySet<BotState> = new Set(["stopped", "crashed", "timeout", "removed"]);

/**
 * Runs `bot` jobs (core/jobs/bot.ts): makes the image, then hands the container to a
 * BotSupervisor for the bot's whole life, reporting each state and each container's output.
 * Canceling the job stops the bot; a runner that stops lets the job go (detach) and leaves the
 * container running, for its next life to adopt.
 */
export class BotJobHandler implements JobHandler<"bot"> {
  /** Run id -> the bot held now. */
  readonly held = new Map<string, HeldBot>();
  /** Bot id -> its samples not yet sent (the newest few, should the server be away). */
  private readonly samples = new Map<string, BotStats[]>();
  private sampler: NodeJS.Timeout | undefined;
  private sampling = false;

  constructor(private readonly deps: BotHandlerDeps) {}

  /** The samples taken since the last call (they ride on the runner's next heartbeat). */
  takeStats(): BotStats[] {
    const taken = [...this.samples.values()].flat();
    this.samples.clear();
    return taken;
  }

  /**
   * What the server asks of a bot held here: an inbound webhook forwarded to its container's port
   * (inside the container's own network), or its whole kept log.
   */
  async call(
    botId: string,
    call: BotCall,
    sendPart?: (bodyBase64: string) => Promise<void>,
  ): Promise<BotReply> {
    if (call.kind === "log") {
      const body = new BotLogFile(this.logDir, botId).read();
      if (!sendPart) return { status: 200, headers: {}, body_base64: body.toString("base64") };
      // In parts: no message nears the link's largest, and other jobs' messages go between them.
      let parts = 0;
      for (let at = 0; at < body.length; at += botReplyPartBytes) {
        await sendPart(body.subarray(at, at + botReplyPartBytes).toString("base64"));
        parts += 1;
      }
      return { status: 200, headers: {}, body_base64: "", parts };
    }
    // Held by run: during an update the version running longest (the one the bot is on until the
    // new one is switched to) takes the call.
    let containerId: string | null = null;
    for (const held of this.held.values()) {
      if (held.botId !== botId) continue;
      containerId = held.supervisor.runningContainer;
      if (containerId) break;
    }
    if (!containerId)
      return botErrorReply(503, "BOT_NOT_RUNNING", `bot ${botId} has no running container on this runner`);
    const { pid } = await this.deps.engine.inspect(containerId);
    if (!pid) return botErrorReply(503, "BOT_NOT_RUNNING", `bot ${botId}'s container is not running`);
    return forwardHook(pid, call);
  }

  private get logDir(): string {
    return this.deps.logDir ?? join(this.deps.workDir, "logs");
  }

  /**
   * Samples each held bot's container every few seconds while any is held (one `docker stats`
   * sample takes about a second, so never per heartbeat, and one bot after another).
   */
  private sample(): void {
    if (this.sampler || this.held.size === 0) return;
    const tick = async () => {
      if (this.sampling) return;
      this.sampling = true;
      try {
        for (const { botId, supervisor } of this.held.values()) {
          const status = await supervisor.status().catch(() => undefined);
          if (status?.memoryBytes == null || status.cpuPercent == null) continue;
          const kept = this.samples.get(botId) ?? [];
          kept.push({
            bot_id: botId,
            memory_bytes: status.memoryBytes,
            cpu_percent: Math.round(status.cpuPercent * 100) / 100,
            at: new Date().toISOString(),
            memory_limit_bytes: status.usage?.memoryLimitBytes ?? null,
            net_rx_bytes: status.usage?.netRxBytes ?? 0,
            net_tx_bytes: status.usage?.netTxBytes ?? 0,
            pids: status.usage?.pids ?? 0,
            restarts: status.restarts,
          });
          // A server away for long gets the newest minutes, not all of them.
          if (kept.length > maxUnsentSamples) kept.splice(0, kept.length - maxUnsentSamples);
          this.samples.set(botId, kept);
        }
      } finally {
        this.sampling = false;
        if (this.held.size === 0 && this.sampler) {
          clearInterval(this.sampler);
          this.sampler = undefined;
        }
      }
    };
    this.sampler = setInterval(() => void tick(), this.deps.statsIntervalMs ?? defaultStatsIntervalMs);
    this.sampler.unref();
    void tick();
  }

  async run(job: BotJob, io: JobIo): Promise<BotJobResult> {
    const task = job.payload;
    const masker = new SecretMasker([...task.secrets, ...secretsFromEnv(task.env)]);
    const log = new BotLogFile(this.logDir, task.bot_id, task.log_max_bytes);
    const emit = (event: EventInput) => {
      const masked = masker.maskDeep(event);
      if (masked.type === "step.output" && masked.step === botSteps.run) {
        const ts = new Date().toISOString();
        for (const text of masked.data.replace(/\n$/, "").split("\n")) log.write(ts, masked.stream, text);
      }
      io.emit(masked);
    };
    try {
      const result = await this.live(task, io, emit, masker);
      return masker.maskDeep(result);
    } finally {
      log.close();
    }
  }

  private async live(
    task: BotTask,
    io: JobIo,
    emit: (event: EventInput) => void,
    masker: SecretMasker,
  ): Promise<BotJobResult> {
    const base = { kind: "bot" as const, bot_id: task.bot_id, mode: task.source.mode };
    const unstarted = { ...base, exit_code: null, oom_killed: false, restarts: 0 };
    const image = await this.image(task, io, emit);
    if ("error" in image) {
      return {
        ...unstarted,
        status: io.signal.aborted ? "canceled" : "failed",
        state: "crashed",
        error: image.error,
      };
    }
    // Stopped (or let go) while the image was made: no container is started at all. A supervisor
    // that never started has nothing to stop and would never say it ended.
    if (io.signal.aborted) {
      const detached = io.signal.reason === detachReason;
      if (!detached) emit({ type: "bot.state", bot_id: task.bot_id, state: "stopped", restarts: 0 });
      return {
        ...unstarted,
        status: detached ? "success" : "canceled",
        state: detached ? "running" : "stopped",
        image: image.name,
      };
    }
    const output = new ContainerOutput(this.deps.engine, task.name, emit);
    let last: BotStateChange = { state: "stopped", restarts: 0 };
    let ended!: () => void;
    const done = new Promise<void>((resolve) => (ended = resolve));
    const supervisor = new BotSupervisor({
      engine: this.deps.engine,
      bot: {
        id: task.bot_id,
        image: image.name,
        env: task.env,
        limits: { memoryBytes: task.limits.memory_bytes, cpus: task.limits.cpus, pids: task.limits.pids },
        ownership: {
          botId: task.bot_id,
          tenantId: task.tenant_id,
          owner: task.owner,
          expiresAt: task.expires_at,
        },
        network: task.network,
        restartPolicy: {
          kind: task.restart.policy,
          maxRestarts: task.restart.max_restarts,
          backoffMs: task.restart.backoff_ms,
        },
        ...(this.deps.labels ? { labels: this.deps.labels() } : {}),
        ...(task.health ? { health: task.health } : {}),
        version: task.version,
      },
      onState: (change) => {
        last = change;
        emit({
          type: "bot.state",
          bot_id: task.bot_id,
          state: change.state,
          restarts: change.restarts,
          ...(change.exitCode !== undefined ? { exit_code: change.exitCode } : {}),
          ...(change.oomKilled !== undefined ? { oom_killed: change.oomKilled } : {}),
          ...(change.error ? { error: supervisorError(change.error) } : {}),
          ...(change.lastLogs ? { last_logs: change.lastLogs.map((line) => masker.mask(line)) } : {}),
          ...(change.containerId ? { container_id: change.containerId } : {}),
          ...(change.health
            ? { health: { ...change.health, output: masker.mask(change.health.output) } }
            : {}),
          image: image.name,
        });
        // After the state: `running` is what a start waits for; the output steps follow it.
        output.changed(change);
        if (finalStates.has(change.state)) ended();
      },
    });
    // Keyed by its run: during an update two versions of one bot run side by side.
    this.held.set(task.run_id, { botId: task.bot_id, supervisor });
    this.sample();
    let detached = false;
    const onAbort = () => {
      if (io.signal.reason === detachReason) {
        detached = true;
        supervisor.detach();
        ended();
        return;
      }
      void supervisor.stop().catch(() => ended());
    };
    io.signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (io.signal.aborted) onAbort();
      else if (task.adopt) await supervisor.adopt();
      else await supervisor.start();
    } catch {
      // The supervisor reported the failed start as `crashed` with BOT_START_FAILED.
    }
    await done;
    io.signal.removeEventListener("abort", onAbort);
    this.held.delete(task.run_id);
    this.samples.delete(task.bot_id);
    await output.close(detached);
    const final = last;
    const status: BotJobResult["status"] =
      final.state === "timeout"
        ? "timeout"
        : final.state === "crashed"
          ? "failed"
          : io.signal.aborted && !detached
            ? "canceled"
            : "success";
    return {
      ...base,
      status,
      state: detached ? "running" : final.state,
      image: image.name,
      exit_code: final.exitCode ?? null,
      oom_killed: final.oomKilled ?? false,
      restarts: final.restarts,
      ...(final.error ? { error: supervisorError(final.error) } : {}),
    };
  }

  /** Builds or pulls the bot's image as step `build` or `pull`; an adopted bot's image is here already. */
  private async image(
    task: BotTask,
    io: JobIo,
    emit: (event: EventInput) => void,
  ): Promise<{ name: string } | { error: ErrorInfo }> {
    const step = task.source.mode === "image" ? botSteps.pull : botSteps.build;
    const ref = { step, host: task.name };
    const started = Date.now();
    emit({ type: "bot.state", bot_id: task.bot_id, state: step === "pull" ? "pulling" : "building" });
    emit({ type: "step.started", ...ref, attempt: 1 });
    const finished = (end: {
      status: "success" | "failed" | "canceled";
      exit_code: number | null;
      error?: ErrorInfo;
    }) => emit({ type: "step.finished", ...ref, ...end, attempts: 1, duration_ms: Date.now() - started });
    try {
      const name = await prepareBotImage(
        this.deps,
        task,
        (line) => emit({ type: "step.output", ...ref, stream: "stdout", data: `${line}\n` }),
        io.signal,
      );
      finished({ status: "success", exit_code: 0 });
      return { name };
    } catch (cause) {
      const error =
        cause instanceof ImageBuildError
          ? errorInfo("BOT_BUILD_FAILED", `${cause.message}\n${cause.lastLines.join("\n")}`)
          : toErrorInfo(cause);
      const canceled = io.signal.aborted;
      finished({ status: canceled ? "canceled" : "failed", exit_code: null, error });
      emit({ type: "bot.state", bot_id: task.bot_id, state: canceled ? "stopped" : "crashed", error });
      return { error };
    }
  }
}

/** A supervisor's error (its codes are in the error table) with its hint. */
function supervisorError(error: { code: string; message: string }): ErrorInfo {
  const code = (error.code in errorTable ? error.code : "INTERNAL") as ErrorCode;
  return errorInfo(code, error.message);
}

/**
 * Each container of a bot is an attempt of its step `run`: its output is followed into
 * `step.output` events from its start, and the attempt ends when the next state says how.
 */
class ContainerOutput {
  private attempt = 0;
  private startedAt = 0;
  private follow: AbortController | null = null;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly engine: DockerEngine,
    private readonly host: string,
    private readonly emit: (event: EventInput) => void,
  ) {}

  changed(change: BotStateChange): void {
    // A health report of the same container changes its state, not its attempt.
    const newContainer = change.containerId !== undefined;
    if (this.attempt > 0 && this.follow && (newContainer || finalStates.has(change.state)))
      this.endAttempt(change);
    if (newContainer) this.startAttempt(change.containerId!);
  }

  private startAttempt(containerId: string): void {
    this.attempt += 1;
    this.startedAt = Date.now();
    const ref = { step: botSteps.run, host: this.host };
    this.emit({ type: "step.started", ...ref, attempt: this.attempt });
    const follow = new AbortController();
    this.follow = follow;
    this.reading = (async () => {
      try {
        for await (const line of this.engine.logs(containerId, { follow: true, signal: follow.signal })) {
          this.emit({ type: "step.output", ...ref, stream: line.stream, data: `${line.line}\n` });
        }
      } catch {
        // The container was removed while its output was read: its last lines are in bot.state.
      }
    })();
  }

  private endAttempt(change: BotStateChange): void {
    const exitCode = change.exitCode ?? null;
    const status =
      change.state === "timeout"
        ? "timeout"
        : change.state === "stopped" || exitCode === 0
          ? "success"
          : "failed";
    this.follow = null;
    this.emit({
      type: "step.finished",
      step: botSteps.run,
      host: this.host,
      status: change.state === "removed" ? "canceled" : status,
      exit_code: exitCode,
      attempts: this.attempt,
      duration_ms: Date.now() - this.startedAt,
    });
  }

  async close(detached: boolean): Promise<void> {
    if (detached) this.follow?.abort();
    await this.reading;
  }
}
