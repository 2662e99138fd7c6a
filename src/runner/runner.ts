import { mkdirSync, rmSync } from "node:fs";
import { RunyardError } from "../core/errors.js";
import { assertExhaustive } from "../core/exhaustive.js";
import { type Job, type JobKind, type JobResult, jobKinds, jobLogFields } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import {
  maxKeptRuns,
  maxRunnerMessageBytes,
  messageTooBigCloseCode,
  policyCloseCode,
  type RunnerMessage,
  revokedCloseCode,
  runnerInfoRefusal,
  ServerMessage,
} from "../core/protocol.js";
import { linkOpen, type RunnerLink } from "../core/runner-link.js";
import { answerBotCall, removeBot } from "./bot-messages.js";
import { detachReason, type JobIo } from "./handlers/types.js";
import { JobOutbox, type OutboxLink } from "./job-outbox.js";
import { outputPieces } from "./message-limits.js";
import { OutputSpool, SpoolDisk } from "./output-spool.js";
import type { RunnerDaemonOptions } from "./runner-options.js";
import { openServerLink } from "./server-link.js";
import { WorkSlots } from "./work-slots.js";

/** What the server refuses a hello with for good: the runner stops instead of retrying. */
const refusalCodes = [
  "RUNNER_ID_TAKEN",
  "RUNNER_TENANT_MISMATCH",
  "RUNNER_SHARED_TENANT",
  "RUNNER_CANNOT_ISOLATE",
] as const;
const isRefusal = (code: string): code is (typeof refusalCodes)[number] =>
  (refusalCodes as readonly string[]).includes(code);

/** A job of a kind this runner has no handler for: a fault of the runner (`kinds` never offers one). */
const noHandler = (kind: JobKind): Promise<never> =>
  Promise.reject(new Error(`this runner has no ${kind} handler`));

/**
 * How long the runner hears nothing from its server before it leaves it for the next URL: three
 * of the server's heartbeats, or a third of its lease where that is longer. A server's stall
 * shorter than that (a loaded host, a long garbage collection) costs no reconnect, nor the bot
 * calls in flight over the socket; and the runner still leaves in time to renew its jobs' leases
 * through another replica before they run out. The defaults (2 s heartbeats, a 10 s lease): 6 s.
 */
export function serverSilenceMs(heartbeatMs: number, leaseMs: number): number {
  return Math.max(heartbeatMs * 3, Math.round(leaseMs / 3));
}

/** One job this runner holds, from assign until the server says `done`. */
interface HeldJob {
  id: string;
  kind: JobKind;
  controller: AbortController;
  /** Its events on their way to the server, and its result once its work ended. */
  outbox: JobOutbox;
  /** Its processes are gone. */
  ended?: boolean;
  /** Given up (shutdown grace passed, or the server dropped it): no result is sent. */
  abandoned?: boolean;
}

/**
 * The runner daemon (connect mode): opens a WebSocket to the server, takes jobs, hands each to
 * the handler of its kind and streams the events it reports back. Work in hand goes on while the server is unreachable; what the
 * server has not acked is sent again after the reconnect.
 */
export class RunnerDaemon {
  private socket: RunnerLink | undefined;
  private readonly jobs = new Map<string, HeldJob>();
  private connected = false;
  /** The socket as the jobs' outboxes use it. */
  private readonly link: OutboxLink = {
    connected: () => this.connected,
    compact: () => this.compactReports,
    send: (message) => this.send(message),
  };
  /** The welcoming server takes a job's first report as its accept, its last batch inside `finished`. */
  private compactReports = false;
  private stopped = false;
  private backoffMs: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** The last connection was answered 503 (the server's database is away): its Retry-After is the backoff. */
  private awayAnswered = false;
  /** Index in `serverUrls` of the server this runner connects (or is connected) to. */
  private serverIndex = 0;
  /** The server of the last welcome; a welcome from another one is a move. */
  private welcomedBy: string | undefined;
  /** Connections that ended since the last welcome or the last backoff: a full round waits. */
  private failedInRound = 0;
  private lastHeard = 0;
  /** The server's messages in order: those after a welcome wait for its `onWelcome`. */
  private inbox: Promise<void> = Promise.resolve();
  private firstWelcome: { resolve: () => void; reject: (error: Error) => void } | undefined;
  /** Jobs that died with an earlier life of this runner; told to the server until it welcomes us. */
  private reaped: string[];
  /** Bot containers found at start; told to the server until it welcomes us. */
  private foundBots: string[];
  private draining = false;
  /** Called whenever a job leaves `jobs`; lets `stop` wait without polling. */
  private onJobGone: (() => void) | undefined;
  /** What all the jobs' spools hold together, against the overall cap and the disk's free space. */
  private readonly spoolDisk: SpoolDisk | undefined;
  /** The work (not bots) whose processes live, against the capacity: a dropped job's count until they are gone. */
  private readonly slots: WorkSlots;

  constructor(private readonly options: RunnerDaemonOptions) {
    if (options.serverUrls.length === 0) throw new Error("a runner needs at least one server URL");
    this.backoffMs = options.minBackoffMs ?? 200;
    this.reaped = options.journal?.previous ?? [];
    // What an earlier life of this runner left waiting on disk belongs to jobs it cannot resume.
    if (options.spool) {
      rmSync(options.spool.dir, { recursive: true, force: true });
      mkdirSync(options.spool.dir, { recursive: true, mode: 0o700 });
      this.spoolDisk = new SpoolDisk(options.spool.dir, options.spool.totalBytes, options.spool.minFreeBytes);
    }
    this.foundBots = options.bots?.found ?? [];
    this.slots = new WorkSlots(options.info.capacity, options.droppedSlotMs);
  }

  /** Connects; resolves on the first welcome, rejects if the server refuses the token. */
  start(): Promise<void> {
    // The server refuses a hello past its caps: say so before connecting, not in a reconnect loop.
    const refusal = runnerInfoRefusal(this.options.info);
    if (refusal) return Promise.reject(refusal);
    return new Promise((resolve, reject) => {
      this.firstWelcome = { resolve, reject };
      this.connect();
    });
  }

  get runningJobs(): number {
    return [...this.jobs.values()].filter((job) => !job.outbox.result).length;
  }

  /**
   * Shuts down gracefully: takes no new work, lets running jobs finish for up to `graceMs`, then
   * cuts what is left. A cut job is reported as abandoned, never canceled: the server ends it
   * RUNNER_LOST and the run retries it or ends `interrupted`. Its processes are stopped before
   * this resolves (SIGTERM, then SIGKILL after the kill grace).
   */
  async stop(graceMs: number): Promise<void> {
    this.draining = true;
    this.send({ type: "draining" });
    // A bot outlives its runner: its container keeps running and the runner's next life adopts
    // it, so a bot job is let go at once instead of holding the shutdown for the grace.
    for (const job of this.jobs.values()) {
      if (job.kind !== "bot" || job.outbox.result || job.abandoned) continue;
      const reason =
        "its runner is restarting; the bot's container keeps running and is adopted when the runner is back";
      this.abandon(job, reason, detachReason);
    }
    // A job still waiting (for another turn of its agent conversation, or for a dropped job's
    // processes to end) never started: it goes now, saying so, rather than start during the
    // shutdown or be cut at its end.
    const waiting = new Set(
      Object.values(this.options.handlers).flatMap((handler) => [...(handler?.waiting?.() ?? [])]),
    );
    for (const job of this.jobs.values()) {
      const forSlot = this.slots.waits(job.id);
      if (!(waiting.has(job.id) || forSlot) || job.outbox.result || job.abandoned) continue;
      const what = forSlot ? "a dropped job's processes to end" : "another turn of its conversation";
      this.abandon(job, `it had not started: it waited for ${what} on this runner, which is shutting down`);
    }
    const deadline = Date.now() + graceMs;
    while (this.runningJobs > 0 && Date.now() < deadline) await this.jobGone(deadline - Date.now());
    const cut = [...this.jobs.values()].filter((job) => !job.outbox.result);
    const grace = `${Math.round(graceMs / 1000)} s`;
    for (const job of cut)
      this.abandon(job, `it was shutting down and the step ran past the shutdown grace of ${grace}`);
    // Results the server has not confirmed yet get a moment to arrive; cut jobs a moment to die.
    const settle = Date.now() + 5000;
    while ([...this.jobs.values()].some((job) => !job.abandoned || !job.ended) && Date.now() < settle) {
      if (!this.connected && cut.every((job) => job.ended)) break;
      await this.jobGone(settle - Date.now());
    }
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    this.socket?.close(1000, "runner stopping");
  }

  /** Reports a job abandoned (the server ends it RUNNER_LOST) and stops it. */
  private abandon(job: HeldJob, reason: string, abortReason?: unknown): void {
    job.abandoned = true;
    job.outbox.quiet();
    this.send({ type: "abandoned", job_id: job.id, reason });
    job.controller.abort(abortReason);
  }

  private jobGone(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      const previous = this.onJobGone;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.onJobGone = () => {
        previous?.();
        done();
      };
    });
  }

  private forget(jobId: string): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    this.jobs.delete(jobId);
    job.outbox.remove();
    this.options.journal?.remove(jobId);
    const waiting = this.onJobGone;
    this.onJobGone = undefined;
    waiting?.();
  }

  /** The server this runner connects, or is connected, to. */
  get serverUrl(): string {
    return this.options.serverUrls[this.serverIndex] ?? "";
  }

  private connect(): void {
    openServerLink(
      {
        url: this.serverUrl,
        token: this.options.token,
        failover: this.options.serverUrls.length > 1,
        logger: this.options.logger,
        ...(this.options.link ? { local: this.options.link } : {}),
      },
      {
        linked: (socket) => {
          this.socket = socket;
          this.listen(socket);
          // Stopped while it was being linked: its close ends it, and the hello goes nowhere.
          if (this.stopped) socket.close(1000, "runner stopping");
        },
        opened: () => this.opened(),
        away: (retryAfterMs, code) => this.serverAway(retryAfterMs, code),
        refused: (message) => this.tokenRefused(message),
        failed: () => this.disconnected(),
      },
    );
  }

  /** The link is open: the hello, with the jobs this runner holds. */
  private opened(): void {
    this.lastHeard = Date.now();
    this.send({
      type: "hello",
      runner: { ...this.options.info, kinds: this.kinds },
      jobs: [...this.jobs.values()]
        .filter((job) => !job.abandoned)
        .map((job) => ({ id: job.id, batch: job.outbox.lastBatch })),
      reaped: this.reaped,
      bots: this.foundBots,
      bot_installs: this.options.bots?.installs ?? {},
      ...(this.options.runs ? { runs: this.options.runs.kept().slice(-maxKeptRuns) } : {}),
    });
  }

  /** The server's messages, in order, and the link's end. */
  private listen(socket: RunnerLink): void {
    socket.on("message", (data) => {
      this.inbox = this.inbox
        .then(() => this.receive(String(data)))
        .catch((error: unknown) =>
          this.options.logger.warn({ err: error }, "a message of the server could not be handled"),
        );
    });
    socket.on("close", (code, reason) => {
      // The token was revoked: say so, as every reconnect will be refused until it is replaced.
      if (code === revokedCloseCode || code === policyCloseCode)
        this.options.logger.error({ code }, `the server closed the connection: ${String(reason)}`);
      // The server refused a message before reading it (WebSocket's "message too big").
      if (code === messageTooBigCloseCode)
        this.options.logger.error(
          { code },
          `the server closed the connection: a message was larger than the ${maxRunnerMessageBytes / (1024 * 1024)} MiB a runner may send`,
        );
      this.disconnected();
    });
  }

  /**
   * The server is up but cannot reach its database (a restart or a failover), or a newer runyard's
   * migration left this replica behind: the runner keeps its work and tries again as the server
   * asks (within its backoff's bounds), not after a growing backoff.
   */
  private serverAway(retryAfterMs: number, code: string | undefined): void {
    this.backoffMs = Math.min(
      Math.max(this.options.minBackoffMs ?? 200, Number.isFinite(retryAfterMs) ? retryAfterMs : 1000),
      this.options.maxBackoffMs ?? 5000,
    );
    this.awayAnswered = true;
    this.options.logger.warn(
      { status: 503, code, retryInMs: this.backoffMs },
      code === "STORE_TOO_NEW"
        ? "this server replica no longer writes its database (a newer runyard migrated it) and takes no runner; the runner keeps its work and tries again"
        : "the server cannot reach its database; the runner keeps its work and tries again",
    );
  }

  /** The token was refused: a start still waiting for its first welcome ends with why. */
  private tokenRefused(message: string): void {
    if (!this.firstWelcome) return;
    this.refused(
      new RunyardError("UNAUTHORIZED", message, {
        hint: "Check the token; make one with `runyard token create --runner`.",
      }),
    );
  }

  /** The server will not have this runner as it is: stop, and tell whoever waits for the start. */
  private refused(error: RunyardError): void {
    this.options.logger.error({ code: error.code, hint: error.hint }, error.message);
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    this.firstWelcome?.reject(error);
    this.firstWelcome = undefined;
    this.socket?.close();
  }

  /**
   * A connection failed or dropped: the next server is tried at once, and the backoff applies
   * only once every server of the round has failed. With one server, every attempt is a round.
   */
  private disconnected(): void {
    this.connected = false;
    clearInterval(this.heartbeatTimer);
    if (this.stopped) return;
    const servers = this.options.serverUrls;
    const left = this.serverUrl;
    this.serverIndex = (this.serverIndex + 1) % servers.length;
    this.failedInRound += 1;
    if (this.failedInRound < servers.length) {
      this.options.logger.warn(
        { server: left, next: this.serverUrl },
        "disconnected from server; trying the next",
      );
      this.connect();
      return;
    }
    this.failedInRound = 0;
    const wait = this.backoffMs * (0.8 + Math.random() * 0.4);
    // A server that answered 503 set the wait itself; it does not grow.
    if (!this.awayAnswered) this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 5000);
    this.awayAnswered = false;
    this.options.logger.warn(
      { retryInMs: Math.round(wait), ...(servers.length > 1 ? { next: this.serverUrl } : {}) },
      "disconnected from server; reconnecting",
    );
    this.reconnectTimer = setTimeout(() => this.connect(), wait);
  }

  private receive(raw: string): Promise<void> | undefined {
    this.lastHeard = Date.now();
    const parsed = ServerMessage.safeParse(JSON.parse(raw));
    if (!parsed.success) {
      this.options.logger.warn(
        { raw: raw.slice(0, 200) },
        "ignoring a message the runner does not understand",
      );
      return;
    }
    const message = parsed.data;
    switch (message.type) {
      case "welcome":
        this.options.runs?.serverTellsEnds(message.run_ends === true);
        this.compactReports = message.compact_job_reports === true;
        return this.welcomed(message.heartbeat_ms, message.lease_ms, message.install_id);
      case "run_ended":
        this.options.runs?.ended(message.run_id);
        break;
      case "heartbeat":
        break;
      case "assign":
        this.assigned(message.job);
        break;
      case "ack":
        this.jobs.get(message.job_id)?.outbox.acked(message.batch);
        break;
      case "done":
        this.forget(message.job_id);
        break;
      case "cancel": {
        const job = this.jobs.get(message.job_id);
        if (job) job.controller.abort();
        else this.send({ type: "abandoned", job_id: message.job_id, reason: "this runner does not hold it" });
        break;
      }
      case "drop": {
        const job = this.jobs.get(message.job_id);
        // A dropped bot job stops its container too: the server may have dropped it because the
        // bot was stopped while this runner was silent. One that is still wanted comes back as
        // the bot's next job and starts it again.
        job?.controller.abort();
        // One that still runs stays, silent, until its processes are gone (or its slot's wait ends).
        if (!job || job.ended) this.forget(message.job_id);
        else {
          job.abandoned = true;
          job.outbox.quiet();
          this.slots.dropped(job.id, this.options.logger);
        }
        break;
      }
      case "remove_bot":
        removeBot(this.options.bots, message.bot_id, this.options.logger);
        break;
      case "bot_call":
        answerBotCall(this.options.bots, message, this.socket, (reply) => this.send(reply));
        break;
      case "error":
        if (isRefusal(message.code)) {
          // Retrying cannot help: the id is someone else's until their token is revoked, a
          // token's tenant does not change, and a runner refused as shared stays refused.
          const hint = message.hint ? { hint: message.hint } : {};
          this.refused(new RunyardError(message.code, message.message, hint));
          break;
        }
        this.options.logger.error({ code: message.code, hint: message.hint }, message.message);
        break;
      default:
        assertExhaustive(message, "server message");
    }
  }

  private async welcomed(heartbeatMs: number, leaseMs: number, installId: string | undefined): Promise<void> {
    const socket = this.socket;
    await this.options.onWelcome?.(installId);
    // The connection dropped meanwhile: the next one's welcome counts, not this one.
    if (socket !== this.socket) return;
    this.connected = true;
    this.reaped = [];
    this.foundBots = [];
    if (this.draining) this.send({ type: "draining" });
    this.backoffMs = this.options.minBackoffMs ?? 200;
    this.failedInRound = 0;
    if (this.welcomedBy !== undefined && this.welcomedBy !== this.serverUrl) {
      this.options.logger.warn(
        { from: this.welcomedBy, server: this.serverUrl, jobs: this.jobs.size },
        `moved to server ${this.serverUrl}`,
      );
    }
    this.welcomedBy = this.serverUrl;
    this.options.onConnected?.(this.serverUrl);
    this.firstWelcome?.resolve();
    this.firstWelcome = undefined;
    clearInterval(this.heartbeatTimer);
    const silenceMs = serverSilenceMs(heartbeatMs, leaseMs);
    this.heartbeatTimer = setInterval(() => {
      const silent = Date.now() - this.lastHeard;
      if (silent > silenceMs) {
        this.options.logger.warn(
          { silent_ms: silent, limit_ms: silenceMs },
          `server silent for ${(silent / 1000).toFixed(1)} s; reconnecting`,
        );
        this.socket?.terminate();
        return;
      }
      this.send({ type: "heartbeat", bots: this.options.bots?.stats?.() ?? [] });
    }, heartbeatMs);
    // Everything the server may have missed while we were apart, of the jobs it still wants.
    for (const job of this.jobs.values()) if (!job.abandoned) job.outbox.resend();
  }

  private assigned(assignment: Job): void {
    const jobId = assignment.job_id;
    if (this.jobs.has(jobId)) return;
    if (this.draining) {
      // Handed out before the server heard we drain: give it back untouched.
      this.send({ type: "abandoned", job_id: jobId, reason: "the runner is shutting down" });
      return;
    }
    if (!this.kinds.includes(assignment.kind)) {
      // Given back unstarted, not abandoned: the server offers it elsewhere after a back-off
      // and fails it with the reasons once runners have refused it a few times.
      const why = this.options.missing?.[assignment.kind] ?? `it has no ${assignment.kind} handler`;
      this.options.logger.warn(
        { jobId, kind: assignment.kind },
        `refused a ${assignment.kind} job: this runner cannot run it (${why})`,
      );
      this.send({
        type: "refuse",
        job_id: jobId,
        reason: `runner ${this.options.info.id} cannot run ${assignment.kind} jobs: ${why}`,
      });
      return;
    }
    this.options.journal?.add(jobId);
    const job: HeldJob = {
      id: jobId,
      kind: assignment.kind,
      controller: new AbortController(),
      outbox: new JobOutbox(
        jobId,
        this.link,
        this.options.logger,
        this.options.spool?.memoryBytes,
        this.options.spool &&
          new OutputSpool(this.options.spool.dir, jobId, this.options.spool.maxBytes, this.spoolDisk),
      ),
    };
    this.jobs.set(jobId, job);
    const log = this.options.logger.child({ jobId, kind: assignment.kind });
    const work = assignment.kind !== "bot";
    if (!work || this.slots.tryTake(jobId)) {
      this.runHeld(job, assignment, log, work);
      return;
    }
    log.info("job waits: a dropped job's processes are still ending");
    void this.slots.take(jobId).then(() => this.runHeld(job, assignment, log, work));
  }

  /** Runs a job it holds; `work` when it holds one of the work slots, given back when it ends. */
  private runHeld(job: HeldJob, assignment: Job, log: Logger, work: boolean): void {
    const jobId = job.id;
    const ended = (): void => {
      job.ended = true;
      if (work) this.slots.free(jobId);
    };
    if (job.abandoned) {
      // Dropped while it waited for a slot: nothing of it ran.
      ended();
      this.forget(jobId);
      return;
    }
    // Accepted as it starts, not when it came: the step's start is stored once it runs.
    job.outbox.accept(this.options.acceptGraceMs ?? 0);
    log.info(jobLogFields(assignment), "job started");
    const io: JobIo = {
      signal: job.controller.signal,
      emit: (event) => {
        // A job given up (dropped, cut) reports no more: the server would refuse it.
        if (!job.abandoned) for (const piece of outputPieces(event)) job.outbox.report(piece);
      },
    };
    this.runJob(assignment, io).then(
      (result) => {
        ended();
        if (job.abandoned) {
          log.info("job cut; its processes are gone");
          this.forget(jobId);
          return;
        }
        log.info({ status: result.status }, "job finished");
        job.outbox.finish(result); // sends `finished` once the last batch is out
      },
      (error: unknown) => {
        // A handler turns failures of the work into results; this is a fault of the runner.
        ended();
        log.error({ err: error }, "job handler failed");
        if (!job.abandoned) {
          job.abandoned = true;
          job.outbox.quiet();
          this.send({ type: "abandoned", job_id: jobId, reason: `the runner failed: ${String(error)}` });
        }
        this.forget(jobId);
      },
    );
  }

  /** The job kinds this runner has a handler for: the only ones the server offers it. */
  get kinds(): JobKind[] {
    const { handlers } = this.options;
    return jobKinds.filter((kind) => kind === "step" || handlers[kind] !== undefined);
  }

  /** Hands the job to the handler of its kind. */
  private runJob(job: Job, io: JobIo): Promise<JobResult> {
    switch (job.kind) {
      case "step":
        return this.options.handlers.step.run(job, io);
      case "agent":
        return this.options.handlers.agent?.run(job, io) ?? noHandler(job.kind);
      case "bot":
        return this.options.handlers.bot?.run(job, io) ?? noHandler(job.kind);
      default:
        return assertExhaustive(job, "job kind");
    }
  }

  private send(message: RunnerMessage): void {
    if (this.socket?.readyState === linkOpen) this.socket.send(JSON.stringify(message));
  }
}
