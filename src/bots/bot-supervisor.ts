import type { BotHealth, BotHealthReport } from "../core/bot-health.js";
import { type BotState, upBotStates } from "../core/bot-states.js";
import type { ContainerLimits } from "../exec/docker/container-spec.js";
import type { ContainerStats, DockerEngine } from "../exec/docker/docker-engine.js";
import { botContainer } from "./container-spec.js";
import { HealthMonitor } from "./health-monitor.js";
import { healthProbe, type Probe } from "./health-probe.js";
import type { BotOwnership } from "./types.js";

/** When runyard starts a bot's container again (Docker never does: see hardenedContainer). */
export interface RestartPolicy {
  kind: "no" | "on-failure" | "always";
  /** Crashes in a row restarted before the bot ends `crashed` with BOT_RESTART_LOOP (5). */
  maxRestarts?: number;
  /** The first delay before a restart, doubling with each one, capped at 5 minutes (1 s). */
  backoffMs?: number;
}

/** One bot as its supervisor runs it, from an image that already exists. */
export interface SupervisedBot {
  id: string;
  image: string;
  /** Secrets included: they reach the container's env only. */
  env: Record<string, string>;
  cmd?: string[];
  limits: ContainerLimits;
  ownership: BotOwnership;
  network: string;
  restartPolicy?: RestartPolicy;
  /** Extra container labels (e.g. `runyard.test=1`). */
  labels?: Record<string, string>;
  /** Its health check: the container is `starting` until a probe passes. */
  health?: BotHealth;
  /** Which version of the bot (1 by default): a later one's container has a name of its own. */
  version?: number;
}

/** What changed, as the store and the user see it. */
export interface BotStateChange {
  state: BotState;
  exitCode?: number | null;
  oomKilled?: boolean;
  restarts: number;
  error?: { code: string; message: string };
  /** The last lines of the container that just ended (a restart reports its predecessor's). */
  lastLogs?: string[];
  /** With `running` (or `starting`): the container now up, so its output can be followed. */
  containerId?: string;
  /** With a health check: what its last probe found. */
  health?: BotHealthReport;
}

export interface BotStatus {
  state: BotState;
  /** Of the current container; 0 when none runs. */
  uptimeMs: number;
  restarts: number;
  exitCode: number | null;
  /** From the engine while a container runs, else null. */
  memoryBytes: number | null;
  cpuPercent: number | null;
  /** The whole sample (limit, network, pids) while a container runs, else undefined. */
  usage?: ContainerStats;
}

export interface ReconciledContainers {
  adopted: { botId: string; containerId: string; running: boolean }[];
  /** Managed containers of bots the caller no longer knows: the caller removes them. */
  orphans: string[];
}

export const restartLoopCode = "BOT_RESTART_LOOP";
export const startFailedCode = "BOT_START_FAILED";
/** The health check failed its retries in a row and the restart policy ended the container. */
export const unhealthyCode = "BOT_UNHEALTHY";
/** The container could no longer be watched or read (e.g. removed behind runyard's back). */
export const containerLostCode = "BOT_CONTAINER_LOST";
export const maxBackoffMs = 5 * 60_000;
/** How many lines of an ended container are kept (issue 10: the previous container's last logs). */
export const lastLogLineCount = 100;
/** SIGTERM, then SIGKILL after this many seconds. */
export const stopGraceSecs = 10;
/** A container that ran this long was healthy: the crash count and the backoff start over. */
const stableRunMs = maxBackoffMs;
/** setTimeout's limit; a longer lifetime is waited for in steps. */
const maxTimerMs = 2 ** 31 - 1;

interface Exit {
  exitCode: number | null;
  oomKilled: boolean;
  lastLogs: string[];
}

/**
 * The runner-side life of one bot's container: starts it hardened, sees it end through Docker's
 * events, restarts it per policy with backoff (each restart a new container, so every crash is
 * seen and its logs kept), ends it at its lifetime, and says every change through `onState`.
 * Ended containers are removed once their last lines are kept, so nothing is left behind.
 */
export class BotSupervisor {
  private readonly engine: DockerEngine;
  private readonly bot: SupervisedBot;
  private readonly onState: (change: BotStateChange) => void;
  private readonly policy: Required<RestartPolicy>;
  /** Before start, a bot reads as stopped. */
  private state: BotState = "stopped";
  private containerId: string | null = null;
  private startedAt: number | null = null;
  private restarts = 0;
  private crashesInRow = 0;
  private exitsInRow = 0;
  private exitCode: number | null = null;
  /** Bumped whenever the supervisor itself ends or replaces a container: stale watchers stop. */
  private generation = 0;
  /** An adopt is asking the engine for the bot's container (see `stop`). */
  private adopting = false;
  private watch: AbortController | null = null;
  private backoffTimer: NodeJS.Timeout | null = null;
  private lifetimeTimer: NodeJS.Timeout | null = null;
  private monitor: HealthMonitor | null = null;
  private readonly probe: Probe | undefined;
  /** The last health report said, so an unchanged probe is not said again. */
  private lastHealth: BotHealthReport | undefined;
  /** The container being ended because its health check failed: its exit is a failure. */
  private endedUnhealthy: string | null = null;

  constructor(options: {
    engine: DockerEngine;
    bot: SupervisedBot;
    onState: (change: BotStateChange) => void;
  }) {
    this.engine = options.engine;
    this.bot = options.bot;
    this.onState = options.onState;
    this.probe = options.bot.health
      ? healthProbe(options.engine, options.bot.health, options.bot.network)
      : undefined;
    this.policy = {
      kind: options.bot.restartPolicy?.kind ?? "no",
      maxRestarts: options.bot.restartPolicy?.maxRestarts ?? 5,
      backoffMs: options.bot.restartPolicy?.backoffMs ?? 1000,
    };
  }

  /** The container running now, if any (the runner reaches its network through it). */
  get runningContainer(): string | null {
    return this.state === "running" ? this.containerId : null;
  }

  get containerName(): string {
    const version = this.bot.version ?? 1;
    return version === 1 ? `runyard-bot-${this.bot.id}` : `runyard-bot-${this.bot.id}-v${version}`;
  }

  /** Whether a container of the bot is up (running, starting or unhealthy). */
  private get up(): boolean {
    return (upBotStates as readonly BotState[]).includes(this.state);
  }

  /** The state a container that just came up is in: `starting` until a health check passes. */
  private get upState(): BotState {
    return this.bot.health ? "starting" : "running";
  }

  /** Probes the container now up, saying each report that changed something. */
  private watchHealth(id: string, generation: number): void {
    if (!this.bot.health || !this.probe) return;
    this.monitor?.stop();
    this.lastHealth = undefined;
    const health = this.bot.health;
    const monitor = new HealthMonitor(health, this.probe, id, this.startedAt ?? Date.now(), (report) => {
      if (generation !== this.generation || this.monitor !== monitor) return;
      const state: BotState =
        report.status === "healthy" ? "running" : report.status === "unhealthy" ? "unhealthy" : "starting";
      const last = this.lastHealth;
      const changed =
        !last ||
        last.status !== report.status ||
        last.output !== report.output ||
        last.failures !== report.failures ||
        state !== this.state;
      this.lastHealth = report;
      if (changed) this.emit({ state, health: report });
      if (report.status === "unhealthy" && this.policy.kind !== "no" && this.endedUnhealthy !== id) {
        // The restart policy takes it: the container is ended, and its exit handled as a crash.
        this.endedUnhealthy = id;
        monitor.stop();
        this.engine.stop(id, stopGraceSecs).catch(() => undefined);
      }
    });
    this.monitor = monitor;
    monitor.start();
  }

  /** The last health report, when the bot has a health check. */
  get health(): BotHealthReport | undefined {
    return this.lastHealth;
  }

  /** Starts the container and reports `running`; a bot past its lifetime ends `timeout` at once. */
  async start(): Promise<void> {
    if (this.up) throw new Error(`bot ${this.bot.id} is already running`);
    if (this.state === "removed") throw new Error(`bot ${this.bot.id} was removed`);
    this.restarts = 0;
    this.crashesInRow = 0;
    this.exitsInRow = 0;
    this.exitCode = null;
    if (Date.parse(this.bot.ownership.expiresAt) <= Date.now()) {
      this.finish("timeout", {});
      return;
    }
    this.state = this.upState;
    this.armLifetime();
    // The generation `launch` takes: a stop or remove meanwhile moves it on.
    const launching = this.generation + 1;
    try {
      await this.launch({});
    } catch (error) {
      // Stopped or removed while its container was being made: that is how it ended, not a crash.
      if (this.generation !== launching) return;
      this.crash(startFailedCode, messageOf(error));
      throw error;
    }
  }

  /**
   * Takes over the bot's container left by an earlier life of this runner (found by its name):
   * one still running is watched on, keeping its uptime; one that ended meanwhile is handled as
   * any exit (crashed or stopped, restarted per policy). Without a container it starts anew.
   */
  async adopt(): Promise<void> {
    if (this.up) throw new Error(`bot ${this.bot.id} is already running`);
    let found: Awaited<ReturnType<DockerEngine["inspect"]>> | undefined;
    const asked = this.generation;
    this.adopting = true;
    try {
      found = await this.engine.inspect(this.containerName);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    } finally {
      this.adopting = false;
    }
    // Stopped, removed or let go while the engine answered: that ended it (and its container).
    if (this.generation !== asked) return;
    if (!found || found.labels["runyard.bot"] !== this.bot.id) {
      await this.start();
      return;
    }
    this.restarts = 0;
    this.crashesInRow = 0;
    this.exitsInRow = 0;
    this.state = this.upState;
    this.armLifetime();
    const generation = ++this.generation;
    this.containerId = found.id;
    this.startedAt = found.startedAt === null ? Date.now() : Date.parse(found.startedAt);
    this.emit({ state: this.upState, containerId: found.id });
    const since = Math.floor(Date.now() / 1000) - 1;
    if (found.state !== "running") {
      await this.onExit(found.id, generation);
      return;
    }
    this.follow(found.id, since, generation);
    this.watchHealth(found.id, generation);
  }

  /** Stops the container (SIGTERM, then SIGKILL after the grace), removes it: `stopped`. */
  async stop(): Promise<void> {
    if (!this.up) {
      // A stop while an adopt asks the engine for the container: it ends here, as stopped.
      const adopting = this.adopting;
      await this.endContainer();
      if (adopting) this.finish("stopped", {});
      return;
    }
    await this.endContainer();
    this.finish("stopped", {});
  }

  /**
   * Lets the bot go without touching its container (its runner is stopping): the watchers and
   * timers end, nothing is reported, and the runner's next life adopts the container.
   */
  detach(): void {
    this.generation += 1;
    this.watch?.abort();
    this.watch = null;
    this.clearTimers();
  }

  /** Ends the container if it runs and forgets it: `removed`. */
  async remove(): Promise<void> {
    await this.endContainer();
    this.finish("removed", {});
  }

  async status(): Promise<BotStatus> {
    const id = this.containerId;
    let memoryBytes: number | null = null;
    let cpuPercent: number | null = null;
    let usage: ContainerStats | undefined;
    if (id !== null && this.up) {
      try {
        usage = await this.engine.stats(id);
        ({ memoryBytes, cpuPercent } = usage);
      } catch {
        // The container ended between the two calls; its watcher reports that.
      }
    }
    return {
      state: this.state,
      uptimeMs: this.startedAt === null ? 0 : Date.now() - this.startedAt,
      restarts: this.restarts,
      exitCode: this.exitCode,
      memoryBytes,
      cpuPercent,
      ...(usage ? { usage } : {}),
    };
  }

  /**
   * After a server or runner restart Docker's labels are the only record: the managed containers
   * of known bots are adopted, the others are orphans.
   */
  static async reconcile(engine: DockerEngine, knownBotIds: Iterable<string>): Promise<ReconciledContainers> {
    const known = new Set(knownBotIds);
    const result: ReconciledContainers = { adopted: [], orphans: [] };
    for (const container of await engine.listManaged()) {
      const botId = container.labels["runyard.bot"];
      if (botId !== undefined && known.has(botId)) {
        result.adopted.push({ botId, containerId: container.id, running: container.state === "running" });
      } else {
        result.orphans.push(container.id);
      }
    }
    return result;
  }

  /** Starts a new container and watches it; `previous` is what the last one ended with. */
  private async launch(previous: Partial<Exit> & { error?: BotStateChange["error"] }): Promise<void> {
    const generation = ++this.generation;
    // A container of an earlier life holds the name (e.g. a runner that died mid-restart).
    await this.engine.remove(this.containerName);
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = await this.engine.run(botContainer({ ...this.bot, name: this.containerName }));
    if (generation !== this.generation) {
      // Stopped or removed while it was being made.
      await this.engine.remove(id);
      return;
    }
    this.containerId = id;
    this.startedAt = Date.now();
    this.emit({ state: this.upState, ...previous, containerId: id });
    this.follow(id, since, generation);
    this.watchHealth(id, generation);
  }

  /** Watches the container until it ends; a watch that breaks ends the bot with BOT_CONTAINER_LOST. */
  private follow(id: string, since: number, generation: number): void {
    void this.watchExit(id, since, generation).catch((error: unknown) => {
      if (generation !== this.generation) return;
      this.containerId = null;
      this.startedAt = null;
      this.crash(containerLostCode, messageOf(error));
    });
  }

  /**
   * Waits for the container's `die` event (replayed from `since`, so none is missed between the
   * start and the subscription); an event stream that breaks is reopened after asking inspect.
   */
  private async watchExit(id: string, since: number, generation: number): Promise<void> {
    const controller = new AbortController();
    this.watch = controller;
    let from = since;
    for (;;) {
      let died = false;
      try {
        for await (const event of this.engine.events({
          label: `runyard.bot=${this.bot.id}`,
          since: from,
          signal: controller.signal,
        })) {
          if (event.containerId === id && event.action === "die") {
            died = true;
            break;
          }
        }
      } catch (error) {
        if (!controller.signal.aborted)
          process.emitWarning(`bot ${this.bot.id}: events broke: ${messageOf(error)}`);
      }
      if (controller.signal.aborted || generation !== this.generation) return;
      if (died || (await this.engine.inspect(id)).state !== "running") break;
      from = Math.floor(Date.now() / 1000) - 1;
    }
    controller.abort();
    await this.onExit(id, generation);
  }

  private async onExit(id: string, generation: number): Promise<void> {
    const exit = await this.exitOf(id);
    if (generation !== this.generation) return;
    await this.engine.remove(id);
    if (generation !== this.generation) return;
    const ranMs = this.startedAt === null ? 0 : Date.now() - this.startedAt;
    this.containerId = null;
    this.startedAt = null;
    this.exitCode = exit.exitCode;
    this.monitor?.stop();
    this.monitor = null;
    const unhealthy = this.endedUnhealthy === id;
    this.endedUnhealthy = null;
    const failed = exit.exitCode !== 0 || exit.oomKilled || unhealthy;
    if (ranMs >= stableRunMs) {
      this.crashesInRow = 0;
      this.exitsInRow = 0;
    }
    if (!failed) this.crashesInRow = 0;
    else this.crashesInRow += 1;
    const restart = failed ? this.policy.kind !== "no" : this.policy.kind === "always";
    if (!restart) {
      this.clearTimers();
      this.finish(failed ? "crashed" : "stopped", exit);
      return;
    }
    const unhealthyError = unhealthy
      ? {
          error: {
            code: unhealthyCode,
            message: `bot ${this.bot.id} failed its health check ${this.health?.failures ?? 0} times in a row: ${this.health?.output ?? ""}`,
          },
        }
      : {};
    if (failed && this.crashesInRow > this.policy.maxRestarts) {
      const message = `bot ${this.bot.id} crashed ${this.crashesInRow} times in a row (${this.restarts} restarts); not restarted again`;
      this.crash(restartLoopCode, message, exit);
      return;
    }
    this.exitsInRow += 1;
    const delay = Math.min(this.policy.backoffMs * 2 ** (this.exitsInRow - 1), maxBackoffMs);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = null;
      if (generation !== this.generation) return;
      this.restarts += 1;
      this.launch({ ...exit, ...unhealthyError }).catch((error: unknown) => {
        if (generation + 1 < this.generation) return;
        this.crash(startFailedCode, messageOf(error), exit);
      });
    }, delay);
  }

  /** Ends the bot at `ownership.expiresAt`: stopped with the grace, last lines kept, `timeout`. */
  private armLifetime(): void {
    const left = Date.parse(this.bot.ownership.expiresAt) - Date.now();
    this.lifetimeTimer = setTimeout(
      () => {
        this.lifetimeTimer = null;
        if (!this.up) return;
        if (Date.parse(this.bot.ownership.expiresAt) > Date.now()) {
          this.armLifetime();
          return;
        }
        void this.expire();
      },
      Math.max(0, Math.min(left, maxTimerMs)),
    );
  }

  private async expire(): Promise<void> {
    const id = this.containerId;
    let exit: Partial<Exit> = {};
    try {
      await this.endContainer(async (stopped) => {
        exit = await this.exitOf(stopped);
      });
    } catch (error) {
      process.emitWarning(
        `bot ${this.bot.id}: ending container ${id} at its lifetime failed: ${messageOf(error)}`,
      );
    }
    this.finish("timeout", exit);
  }

  /**
   * Stops the watchers and timers, then the container (with the grace) and removes it;
   * `beforeRemove` reads what it needs of the stopped container first.
   */
  private async endContainer(beforeRemove?: (id: string) => Promise<void>): Promise<void> {
    this.generation += 1;
    this.watch?.abort();
    this.watch = null;
    this.clearTimers();
    const id = this.containerId;
    this.containerId = null;
    this.startedAt = null;
    if (id === null) {
      await this.engine.remove(this.containerName);
      return;
    }
    try {
      await this.engine.stop(id, stopGraceSecs);
      await beforeRemove?.(id);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
    await this.engine.remove(id);
  }

  private clearTimers(): void {
    this.monitor?.stop();
    this.monitor = null;
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    this.backoffTimer = null;
    this.lifetimeTimer = null;
  }

  /** How a container that ended did, with its last lines. */
  private async exitOf(id: string): Promise<Exit> {
    const { exitCode, oomKilled } = await this.engine.inspect(id);
    const lastLogs: string[] = [];
    for await (const entry of this.engine.logs(id, { tail: lastLogLineCount })) lastLogs.push(entry.line);
    return { exitCode, oomKilled, lastLogs };
  }

  /** Ends the bot `crashed` with a typed error; `exit` is what its last container ended with. */
  private crash(code: string, message: string, exit: Partial<Exit> = {}): void {
    this.clearTimers();
    this.finish("crashed", { ...exit, error: { code, message } });
  }

  private finish(state: BotState, detail: Partial<Exit> & { error?: BotStateChange["error"] }): void {
    if (detail.exitCode !== undefined) this.exitCode = detail.exitCode;
    this.emit({ state, ...detail });
  }

  private emit(change: Omit<BotStateChange, "restarts">): void {
    this.state = change.state;
    this.onState({ ...change, restarts: this.restarts });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
