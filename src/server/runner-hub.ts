import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "../core/logger.js";
import { type BotCall, type BotReply, revokedCloseCode } from "../core/protocol.js";
import type { LinkWire, RunnerLink } from "../core/runner-link.js";
import type { Store, TokenRecord } from "../store/index.js";
import type { RunnerSockets } from "./deps.js";
import type { EventBus } from "./event-bus.js";
import type { JobQueue } from "./job-queue.js";
import { JsonBodyThread } from "./json-thread.js";
import { RunEnds } from "./run-ends.js";
import { RunnerSession, type SessionHost } from "./runner-session.js";

export interface HubTimings {
  /** How often runners heartbeat. */
  heartbeatMs: number;
  /** A job's lease; heartbeats renew it. A runner silent this long loses its jobs. */
  leaseMs: number;
}

/**
 * This replica's runner sockets (handed over by routes/runner-socket.ts, token checked): a RunnerSession
 * per socket, the live one per runner id, and the loop offering queued jobs to runners with room.
 */
export class RunnerHub implements SessionHost, RunnerSockets {
  /** Runner id -> its live session here. */
  private readonly live = new Map<string, RunnerSession>();
  /** Every open socket, welcomed or not, so that revoking a token closes its sockets. */
  private readonly sessions = new Set<RunnerSession>();
  /** Moved by each `dispatch` that says the queue may have changed (see RunnerSession.fill). */
  queueChanges = 0;
  private dispatching = false;
  /** Shutting down: no new work goes out. */
  private draining = false;
  private dispatchAgain = false;
  private dispatchTimer: NodeJS.Timeout | undefined;
  readonly heartbeatMs: number;
  readonly replicaId: string;
  readonly installId: string;
  /** Reads runners' large messages off the event loop (started on first use). */
  private readonly jsonThread = JsonBodyThread.available ? new JsonBodyThread() : undefined;
  readonly readJson = ((thread) =>
    thread ? (text: string) => thread.parse(text).then((read) => read.value) : undefined)(this.jsonThread);

  /** Tells its runners when the runs they keep folders for end. */
  readonly runEnds: RunEnds;

  constructor(
    /** Its runners' rows, and what its sessions read (`SessionHost`). */
    readonly store: Pick<Store, "runners" | "tokens" | "bots" | "botHistory" | "runs" | "events">,
    readonly queue: JobQueue,
    timings: HubTimings,
    readonly logger: Logger,
    /** This server among the replicas: runners are recorded as connected to it; only the leader expires leases. */
    private readonly replica: { id: string; installId: string; isLeader(): boolean; alone?: boolean },
  ) {
    this.heartbeatMs = timings.heartbeatMs;
    this.replicaId = replica.id;
    this.installId = replica.installId;
    this.runEnds = new RunEnds(store, () => this.live.values(), logger);
  }

  /**
   * Starts the lease checks, the runs' ends told to runners (heard on `bus`) and the dispatch sweep,
   * every `sweepMs` (RUNYARD_REPLICA_SWEEP_MS).
   */
  start(bus: EventBus, sweepMs: number): void {
    this.runEnds.start(bus);
    this.queue.startLeaseChecks(() => this.replica.isLeader());
    void this.queue
      .offerAfterBackoffs()
      .catch((error: unknown) =>
        this.logger.error({ err: error }, "could not read the refused jobs' back-offs"),
      );
    // Finds jobs whose announcement from another replica was lost; a server alone queues them all itself.
    if (!this.replica.alone) {
      this.dispatchTimer = setInterval(() => this.dispatch(), sweepMs);
      this.dispatchTimer.unref();
    }
  }

  /**
   * A socket whose runner token was checked: its session begins (the runner says hello next).
   * `wire`: the TCP socket under a WebSocket link (RunnerSession's).
   */
  accept(socket: RunnerLink, token: TokenRecord, wire?: LinkWire): void {
    this.sessions.add(new RunnerSession(socket, token, this, wire));
  }

  register(session: RunnerSession): void {
    if (!session.info) return;
    const previous = this.live.get(session.info.id);
    if (previous && previous !== session) previous.socket.close(4000, "replaced by a new connection");
    this.live.set(session.info.id, session);
  }

  unregister(session: RunnerSession): void {
    this.sessions.delete(session);
    if (!session.info || this.live.get(session.info.id) !== session) return;
    this.live.delete(session.info.id);
    // Only if it has not said hello to another replica meanwhile (a route that came back late).
    const runnerId = session.info.id;
    void this.store.runners
      .setStatus(runnerId, "offline", new Date().toISOString(), { replicaId: this.replicaId })
      .catch((error: unknown) =>
        // The database is away; the runner's row says online until its next hello somewhere.
        this.logger.warn({ err: error, runnerId }, "could not record the runner offline"),
      );
    this.logger.info({ runnerId: session.info.id }, "runner disconnected");
  }

  checkRuns(session: RunnerSession, runIds: readonly string[]): void {
    this.runEnds.check([session], runIds);
  }

  isLive(session: RunnerSession): boolean {
    return session.info !== undefined && this.live.get(session.info.id) === session;
  }

  /** Hands out no more work, and waits up to `graceMs` for the jobs runners hold to finish. */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + graceMs;
    // Bots never finish on their own: their containers run on, and their jobs come back after.
    const busy = (): boolean =>
      [...this.live.values()].some((s) => [...s.running.values()].some((kind) => kind !== "bot"));
    while (busy() && Date.now() < deadline) await delay(Math.min(100, Math.max(1, deadline - Date.now())));
  }

  /** Hands queued jobs to connected runners with free capacity (`RunnerSessionHost.dispatch`). */
  dispatch(why: "queue" | "room" = "queue"): void {
    if (why === "queue") this.queueChanges += 1;
    if (this.draining) return;
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = true;
    void (async () => {
      try {
        do {
          this.dispatchAgain = false;
          for (const session of this.live.values()) await session.fill();
        } while (this.dispatchAgain);
      } catch (error) {
        this.logger.error({ err: error }, "dispatch failed");
      } finally {
        this.dispatching = false;
      }
    })();
  }

  /** Asks the runner holding the job here to stop it; false when it is not connected here. */
  cancel(jobId: string, runnerId: string): boolean {
    const session = this.live.get(runnerId);
    if (!session?.running.has(jobId) || !session.open) return false;
    session.send({ type: "cancel", job_id: jobId });
    return true;
  }

  /** Asks a bot's runner (a webhook to forward, its kept log) over its socket here; undefined if not here. */
  callBot(runnerId: string, botId: string, call: BotCall, timeoutMs: number): Promise<BotReply> | undefined {
    const session = this.live.get(runnerId);
    if (!session?.open) return undefined;
    return session.calls.call(botId, call, timeoutMs);
  }

  /** The job was lost (its lease expired): the runner's socket here, if any, drops it. */
  drop(jobId: string, runnerId: string): void {
    const session = this.live.get(runnerId);
    if (!session) return;
    session.running.delete(jobId);
    session.send({ type: "drop", job_id: jobId });
  }

  /**
   * Closes every socket of a revoked runner token here (code 4001), hello pending or not; its runners drop
   * their jobs, which end as lost (retried or interrupted as their runs say), and go offline.
   */
  async revokeToken(tokenId: string): Promise<string[]> {
    const ended: string[] = [];
    for (const session of [...this.sessions]) {
      if (session.token.id !== tokenId) continue;
      this.sessions.delete(session);
      const live = this.isLive(session);
      if (live && session.info) {
        this.live.delete(session.info.id);
        for (const jobId of session.running.keys()) session.send({ type: "drop", job_id: jobId });
      }
      session.socket.close(revokedCloseCode, "runner token revoked");
      if (!live || !session.info) continue;
      const runnerId = session.info.id;
      ended.push(runnerId);
      await this.store.runners.setStatus(runnerId, "offline", new Date().toISOString(), {
        replicaId: this.replicaId,
      });
      await this.queue.loseRunnerJobs(runnerId, `runner ${runnerId}'s token was revoked`);
      this.logger.warn({ runnerId, tokenId }, "runner disconnected: its token was revoked");
    }
    if (ended.length > 0) this.dispatch();
    return ended;
  }

  connectedTokens(): string[] {
    return [...new Set([...this.sessions].map((session) => session.token.id))];
  }

  /** Runs each runner holds right now, for `GET /api/runners`. */
  runningJobs(runnerId: string): string[] {
    return [...(this.live.get(runnerId)?.running.keys() ?? [])];
  }

  get connectedRunners(): number {
    return this.live.size;
  }

  close(): void {
    clearInterval(this.dispatchTimer);
    this.runEnds.stop();
    this.queue.stop();
    for (const session of this.live.values()) session.socket.close(1001, "server stopping");
    this.live.clear();
    void this.jsonThread?.close();
  }
}
