import { setTimeout as delay } from "node:timers/promises";
import { deadline } from "../../core/deadline.js";
import { RunyardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import type { BotRecord, Store } from "../../store/index.js";
import { notifyTimeoutMs } from "../notifier.js";
import { guardedRequest } from "../outbound/guarded-http.js";
import type { OutboundPolicy } from "../outbound/outbound-policy.js";
import type { BotAlertSpec } from "./bot-spec.js";
import { effectiveAlerts, tenantRulesOf } from "./tenant-alerts.js";

/** How often the leader looks at bots' samples for alerts. */
const defaultCheckMs = 5000;
/** How often it makes the coarser history rows and prunes the old ones. */
const downsampleEveryMs = 60_000;
/** A bot that ended this long ago is no longer looked at. */
const endedLookMs = 15 * 60_000;
const notifyRetries = 2;
const notifyDelayMs = 500;
/** Notify POSTs under way at once: a receiver that never answers holds one, not the others. */
const defaultSendsAtOnce = 8;

/** What a bot's `notify` URLs receive when one of its alerts starts (once per episode). */
export interface BotAlertNotice {
  type: "bot.alert";
  bot_id: string;
  bot: string;
  kind: BotAlertSpec["kind"];
  message: string;
  state: string;
  started_at: string;
}

/** Whether an alert holds now, and in what words. */
export async function alertHolds(
  store: Pick<Store, "botHistory">,
  bot: BotRecord,
  alert: BotAlertSpec,
  now: number,
): Promise<string | undefined> {
  switch (alert.kind) {
    case "unhealthy":
      return (bot.state as string) === "unhealthy"
        ? `bot ${bot.name} is unhealthy${bot.error ? `: ${bot.error.message.split("\n")[0]}` : ""}`
        : undefined;
    case "restart_loop": {
      if (bot.state === "crashed" && bot.error?.code === "BOT_RESTART_LOOP")
        return `bot ${bot.name} crashed in a loop and is not restarted again (${bot.restarts} restarts)`;
      if (bot.state !== "running") return undefined;
      const since = new Date(now - alert.within_secs * 1000).toISOString();
      const rows = await store.botHistory.samples(bot.id, 5, since);
      if (rows.length === 0) return undefined;
      const restarted =
        Math.max(...rows.map((row) => row.restarts)) - Math.min(...rows.map((row) => row.restarts));
      return restarted >= alert.restarts
        ? `bot ${bot.name} restarted ${restarted} times in ${alert.within_secs} s`
        : undefined;
    }
    case "memory": {
      if (bot.state !== "running") return undefined;
      const windowMs = Math.max(alert.for_secs * 1000, 1);
      const rows = await store.botHistory.samples(bot.id, 5, new Date(now - windowMs - 10_000).toISOString());
      const inWindow = rows.filter((row) => Date.parse(row.at) >= now - windowMs - 5000);
      const last = rows.at(-1);
      if (!last?.memory_limit_bytes || inWindow.length === 0) return undefined;
      // The samples must reach back over the whole span (a bot that just started has not held it).
      if (alert.for_secs > 0 && Date.parse(rows[0]!.at) > now - windowMs + 5000) return undefined;
      const over = (row: (typeof rows)[number]) =>
        row.memory_limit_bytes !== null &&
        (row.memory_bytes / row.memory_limit_bytes) * 100 > alert.above_percent;
      if (!inWindow.every(over)) return undefined;
      const percent = Math.round((last.memory_bytes / last.memory_limit_bytes) * 100);
      return `bot ${bot.name} uses ${percent}% of its memory limit (over ${alert.above_percent}% for ${alert.for_secs} s)`;
    }
  }
}

/**
 * The leader's watch over bots: makes the coarser history rows and prunes old ones each minute,
 * and every few seconds checks each bot's alerts (its own, and its tenant's of kinds it has none
 * of). An alert that starts to hold opens an episode (once, whichever replica leads) and its
 * bot's `notify` URLs (else its tenant's) are POSTed a `bot.alert`; the episode ends when the
 * alert no longer holds, and the next one notifies again. Notices are sent beside the rounds, a
 * few at once, each POST within the workflow notify timeout: a slow receiver delays no other
 * bot's notice, nor the next round.
 */
export class BotWatch {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private downsampledAt = 0;
  /** Notify POSTs waiting for a free place, and those under way. */
  private readonly queued: (() => Promise<void>)[] = [];
  private readonly sending = new Set<Promise<void>>();
  /** Ends the POSTs under way when the server stops. */
  private readonly closing = new AbortController();

  constructor(
    private readonly store: Pick<Store, "bots" | "botHistory" | "tenantBotAlerts" | "botHookHits">,
    private readonly policy: OutboundPolicy,
    private readonly logger: Logger,
    private readonly options: {
      isLeader: () => boolean;
      checkMs?: number;
      /** Notify POSTs under way at once (8). */
      sendsAtOnce?: number;
      /** One POST's time limit (the workflow notify timeout, 5 s). */
      notifyTimeoutMs?: number;
    },
  ) {}

  /** Why a bot may not notify `url`, when known before any lookup (checked at start). */
  refusalOf(url: string): RunyardError | undefined {
    return this.policy.refusalOf(url);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.round().finally(() => (this.running = undefined));
    }, this.options.checkMs ?? defaultCheckMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    this.queued.length = 0;
    this.closing.abort();
    await Promise.all(this.sending);
  }

  /** Resolves once every notice queued so far has been sent or has failed (tests wait on it). */
  async settled(): Promise<void> {
    while (this.sending.size > 0 || this.queued.length > 0) await Promise.race(this.sending);
  }

  /** One round: downsampling when due, then every bot's alerts. */
  async round(now = Date.now()): Promise<void> {
    if (!this.options.isLeader()) return;
    try {
      if (now - this.downsampledAt >= downsampleEveryMs) {
        this.downsampledAt = now;
        await this.store.botHistory.downsample(new Date(now));
        await this.store.botHookHits.prune(Math.floor(now / 1000) - 60);
      }
      const bots = await this.store.bots.list({});
      const tenants = new Map<string, ReturnType<typeof tenantRulesOf>>();
      for (const bot of bots) {
        if (bot.state === "removed") continue;
        if (bot.finished_at && Date.parse(bot.finished_at) < now - endedLookMs) continue;
        let tenant = { alerts: [] as BotAlertSpec[], notify: [] as string[] };
        if (bot.tenant_id !== null) {
          const known = tenants.get(bot.tenant_id);
          tenant = known ?? tenantRulesOf(await this.store.tenantBotAlerts.get(bot.tenant_id));
          tenants.set(bot.tenant_id, tenant);
        }
        const effective = effectiveAlerts(bot, tenant);
        for (const alert of [...effective.own, ...effective.inherited])
          await this.check(bot, alert, effective.notify, now);
      }
    } catch (error) {
      this.logger.warn({ err: error }, "bot alerts: a round failed");
    }
  }

  private async check(
    bot: BotRecord,
    alert: BotAlertSpec,
    urls: readonly string[],
    now: number,
  ): Promise<void> {
    const message = await alertHolds(this.store, bot, alert, now);
    if (message === undefined) {
      await this.store.botHistory.closeAlert(bot.id, alert.kind);
      return;
    }
    const episode = await this.store.botHistory.openAlert({
      bot_id: bot.id,
      tenant_id: bot.tenant_id,
      kind: alert.kind,
      message,
    });
    if (!episode) return;
    const notice: BotAlertNotice = {
      type: "bot.alert",
      bot_id: bot.id,
      bot: bot.name,
      kind: alert.kind,
      message,
      state: bot.state,
      started_at: episode.started_at,
    };
    // Each URL its own POST in the queue; the episode records how they went once all have.
    const errors: string[] = [];
    let left = urls.length;
    const record = () =>
      this.store.botHistory
        .notified(episode.id, errors.length > 0 ? errors.join("; ") : null)
        .catch((error: unknown) => this.logger.warn({ err: error }, "bot alerts: recording a notice failed"));
    if (left === 0) {
      await record();
      return;
    }
    for (const url of urls) {
      this.enqueue(async () => {
        const error = await this.send(url, notice);
        if (error) errors.push(error);
        left -= 1;
        if (left === 0) await record();
      });
    }
  }

  private enqueue(task: () => Promise<void>): void {
    this.queued.push(task);
    this.pump();
  }

  /** Starts queued POSTs while fewer than the bound are under way. */
  private pump(): void {
    const atOnce = this.options.sendsAtOnce ?? defaultSendsAtOnce;
    while (this.sending.size < atOnce && this.queued.length > 0) {
      const task = this.queued.shift()!;
      const sent: Promise<void> = task()
        .catch((error: unknown) => this.logger.warn({ err: error }, "bot alerts: a notice failed"))
        .finally(() => {
          this.sending.delete(sent);
          this.pump();
        });
      this.sending.add(sent);
    }
  }

  /** POSTs the notice through the server's `notify_hosts:` rules; the error in a line, or undefined. */
  private async send(url: string, notice: BotAlertNotice): Promise<string | undefined> {
    const body = JSON.stringify(notice);
    const timeoutMs = this.options.notifyTimeoutMs ?? notifyTimeoutMs;
    let detail = "";
    for (let attempt = 0; attempt <= notifyRetries; attempt++) {
      if (attempt > 0) await delay(notifyDelayMs);
      if (this.closing.signal.aborted) {
        detail = "the server stopped before the receiver answered";
        break;
      }
      const limit = deadline(timeoutMs, this.closing.signal);
      try {
        const answer = await guardedRequest(this.policy, {
          method: "POST",
          url,
          headers: { "content-type": "application/json", "user-agent": "runyard-notifier" },
          body,
          signal: limit.signal,
        });
        if (answer.status >= 200 && answer.status < 300) return undefined;
        detail = `the receiver answered HTTP ${answer.status}`;
      } catch (error) {
        if (error instanceof RunyardError) return `${error.code}: ${error.message}`;
        detail = `could not reach the receiver, or it did not answer within ${timeoutMs} ms`;
      } finally {
        limit.clear();
      }
    }
    this.logger.warn({ botId: notice.bot_id, url }, `bot alert notify failed: ${detail}`);
    return `NOTIFY_FAILED: notify failed after ${notifyRetries + 1} attempts: ${detail}`;
  }
}
