import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { type WebSocket, WebSocketServer } from "ws";
import { liveBotStates } from "../core/bot-states.js";
import { errorTable } from "../core/errors.js";
import { assertExhaustive } from "../core/exhaustive.js";
import type { Logger } from "../core/logger.js";
import {
  type BotStats,
  type HeldJob,
  type RunnerInfo,
  RunnerMessage,
  revokedCloseCode,
  runnerSocketPath,
  type ServerMessage,
} from "../core/protocol.js";
import type { Store, TokenRecord } from "../store/index.js";
import { type JobBroker, readJob } from "./job-broker.js";
import { botJobPrefix } from "./runs/bot-runs.js";

export interface HubTimings {
  /** How often runners heartbeat. */
  heartbeatMs: number;
  /** A job's lease; heartbeats renew it. A runner silent this long loses its jobs. */
  leaseMs: number;
}

interface Connection {
  info: RunnerInfo;
  socket: WebSocket;
  /** Jobs leased to this connection: the only ones it may accept, report on or finish. */
  /** Job id -> kind, of the jobs leased to this connection. */
  running: Map<string, string>;
  /** The runner is shutting down and takes no new work. */
  draining: boolean;
}

/** Bots one runner runs at once, besides its capacity of other work. */
const maxBotsPerRunner = 50;

/**
 * The server's end of the runner protocol (DESIGN.md section 6): runners connect here, get
 * jobs up to their capacity, heartbeat to keep their leases, and report events and results.
 */
export class RunnerHub {
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  private readonly connections = new Map<string, Connection>();
  /** The runner token each open socket showed, so that revoking a token closes its sockets. */
  private readonly socketTokens = new Map<WebSocket, string>();
  private dispatching = false;
  /** Shutting down: no new work goes out. */
  private draining = false;
  private dispatchAgain = false;
  private leaseTimer: NodeJS.Timeout | undefined;
  private dispatchTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly broker: JobBroker,
    private readonly timings: HubTimings,
    private readonly logger: Logger,
    /** This server among the replicas: runners are recorded as connected to it; only the leader expires leases. */
    private readonly replica: { id: string; isLeader(): boolean; alone?: boolean },
  ) {}

  /** Takes WebSocket upgrades on the runner path of `server`; checks the runner token first. */
  attach(server: Server): void {
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (request.url ?? "").split("?")[0];
      if (path !== runnerSocketPath) {
        socket.destroy();
        return;
      }
      void this.authenticate(request).then((token) => {
        if (!token) {
          socket.end("HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\n\r\nrunner token required\n");
          return;
        }
        if (token.kind !== "runner") {
          socket.end(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\nuse a runner token (runyard token create --runner)\n",
          );
          return;
        }
        this.sockets.handleUpgrade(request, socket, head, (ws) => this.accept(ws, token));
      });
    });
    this.leaseTimer = setInterval(
      () => {
        if (this.replica.isLeader()) void this.expireLeases();
      },
      Math.min(500, this.timings.leaseMs / 4),
    );
    // Jobs queued by other replicas are announced; should an announcement be lost, this finds
    // them. A server alone on its database queues every job itself and dispatches it then.
    if (!this.replica.alone) {
      this.dispatchTimer = setInterval(() => this.dispatch(), 2000);
      this.dispatchTimer.unref();
    }
  }

  private async authenticate(request: IncomingMessage): Promise<TokenRecord | undefined> {
    const header = request.headers.authorization ?? "";
    const secret = header.startsWith("Bearer ") ? header.slice(7).trim() : "";
    return secret ? this.store.tokens.find(secret) : undefined;
  }

  private accept(socket: WebSocket, token: TokenRecord): void {
    let connection: Connection | undefined;
    this.socketTokens.set(socket, token.id);
    // Messages of one runner are handled in order.
    let chain = Promise.resolve();
    socket.on("message", (data) => {
      chain = chain
        .then(async () => {
          const parsed = RunnerMessage.safeParse(JSON.parse(String(data)));
          if (!parsed.success) {
            send(socket, { type: "error", code: "INVALID_INPUT", message: parsed.error.message });
            return;
          }
          const message = parsed.data;
          if (message.type === "hello") {
            if (connection) {
              send(socket, { type: "error", code: "INVALID_INPUT", message: "say hello only once" });
              return;
            }
            connection = await this.hello(
              socket,
              token,
              message.runner,
              message.jobs,
              message.reaped,
              message.bots,
            );
            return;
          }
          if (!connection) {
            send(socket, { type: "error", code: "INVALID_INPUT", message: "say hello first" });
            return;
          }
          await this.handle(connection, message);
        })
        .catch((error: unknown) => this.logger.error({ err: error }, "runner message failed"));
    });
    // A message past maxPayload or a broken frame closes this runner's socket, not the server.
    socket.on("error", (error) => this.logger.warn({ err: error }, "runner socket error"));
    socket.on("close", () => {
      this.socketTokens.delete(socket);
      if (connection && this.connections.get(connection.info.id) === connection) {
        this.connections.delete(connection.info.id);
        // Only if it has not said hello to another replica meanwhile (a route that came back late).
        void this.store.runners.setStatus(connection.info.id, "offline", new Date().toISOString(), {
          replicaId: this.replica.id,
        });
        this.logger.info({ runnerId: connection.info.id }, "runner disconnected");
      }
    });
  }

  private async hello(
    socket: WebSocket,
    token: TokenRecord,
    advertised: RunnerInfo,
    held: HeldJob[],
    reaped: string[],
    bots: string[],
  ): Promise<Connection | undefined> {
    // A runner token bound to a tenant decides it: a runner saying otherwise is refused, not
    // quietly moved, so an operator who meant another tenant finds out at once.
    if (
      token.tenant_id !== null &&
      advertised.tenant_id != null &&
      advertised.tenant_id !== token.tenant_id
    ) {
      this.logger.warn(
        {
          runnerId: advertised.id,
          tokenId: token.id,
          advertised: advertised.tenant_id,
          tenant: token.tenant_id,
        },
        "refused a runner whose tenant disagrees with its token's",
      );
      send(socket, {
        type: "error",
        code: "RUNNER_TENANT_MISMATCH",
        message: `runner "${advertised.id}" says tenant "${advertised.tenant_id}" (RUNYARD_TENANT_ID / ADOS_TENANT_ID), but its token belongs to tenant "${token.tenant_id}"`,
        hint: errorTable.RUNNER_TENANT_MISMATCH.hint,
      });
      socket.close(4003, "tenant disagrees with the runner token");
      return undefined;
    }
    // A runner token bound to a group or tenant decides them; the runner cannot claim others.
    const info: RunnerInfo = {
      ...advertised,
      group: token.group ?? advertised.group,
      tenant_id: token.tenant_id ?? advertised.tenant_id,
    };
    const unshareable = sharingRefusal(info, token);
    if (unshareable) {
      this.logger.warn(
        { runnerId: info.id, tokenId: token.id, tenant: info.tenant_id, isolation: info.isolation },
        "refused a shared runner",
      );
      send(socket, { type: "error", ...unshareable, hint: errorTable[unshareable.code].hint });
      socket.close(4003, "the runner cannot be shared");
      return undefined;
    }
    const now = new Date().toISOString();
    const record = await this.store.runners.upsert({
      ...info,
      status: "online",
      connected_at: now,
      last_heartbeat_at: now,
      token_id: token.id,
      replica_id: this.replica.id,
    });
    if (!record) {
      // Someone else's id: refuse, and leave the rightful runner and its jobs alone.
      this.logger.warn(
        { runnerId: info.id, tokenId: token.id },
        "refused a hello under another token's runner id",
      );
      send(socket, {
        type: "error",
        code: "RUNNER_ID_TAKEN",
        message: `runner id "${info.id}" belongs to another runner token`,
        hint: errorTable.RUNNER_ID_TAKEN.hint,
      });
      socket.close(4003, "runner id belongs to another token");
      return undefined;
    }
    const previous = this.connections.get(info.id);
    if (previous && previous.socket !== socket) previous.socket.close(4000, "replaced by a new connection");
    const connection: Connection = { info, socket, running: new Map(), draining: false };
    this.connections.set(info.id, connection);
    await this.takeInventory(connection, held, reaped);
    await this.disownBots(connection, bots);
    // What it reported through another replica before moving here is applied before what it says now.
    this.broker.mayHaveReports([...connection.running.keys()]);
    send(socket, {
      type: "welcome",
      runner_id: info.id,
      heartbeat_ms: this.timings.heartbeatMs,
      lease_ms: this.timings.leaseMs,
    });
    this.logger.info(
      { runnerId: info.id, group: info.group, resumed: connection.running.size },
      "runner connected",
    );
    this.dispatch();
    return connection;
  }

  /**
   * The runner's list is the truth about what it holds: a job leased to its id that it does not
   * list died with an earlier life of the runner, and ends now rather than when a lease lapses.
   */
  private async takeInventory(connection: Connection, held: HeldJob[], reaped: string[]): Promise<void> {
    const runnerId = connection.info.id;
    const listed = new Set(held.map((job) => job.id));
    for (const job of await this.store.jobs.list({ runnerId, statuses: ["assigned", "running"] })) {
      if (listed.has(job.id)) {
        connection.running.set(job.id, job.type);
        continue;
      }
      const why = reaped.includes(job.id)
        ? `runner ${runnerId} restarted and killed what was left of this step from its previous life`
        : `runner ${runnerId} came back without this job (it restarted or gave the job up)`;
      await this.broker.lost(job, why);
    }
    for (const { id } of held) {
      if (connection.running.has(id)) continue;
      const job = await this.store.jobs.get(id);
      if (job?.status !== "done" || job.runner_id !== runnerId) {
        send(connection.socket, { type: "drop", job_id: id });
        continue;
      }
      // A finished job is told `done` when the runner sends its result again. One the server
      // ended while its runner was away (a bot stopped meanwhile) still runs there: canceled, so
      // it stops; a runner that has the result already ignores the cancel.
      send(connection.socket, { type: "cancel", job_id: id });
    }
    await this.store.jobs.renewLeases(runnerId, this.timings.leaseMs, [...connection.running.keys()]);
  }

  /**
   * Bot containers a runner found at start: those of its live bots stay (their jobs come back to
   * it to adopt them); any other (a bot stopped or removed while the runner was away, another
   * runner's or tenant's) is removed, so nothing is left orphaned.
   */
  private async disownBots(connection: Connection, botIds: string[]): Promise<void> {
    const { id: runnerId, tenant_id: tenantId } = connection.info;
    for (const botId of botIds) {
      const bot = await this.store.bots.get(botId);
      const wanted =
        bot !== undefined &&
        (liveBotStates as readonly string[]).includes(bot.state) &&
        (bot.runner_id === null || bot.runner_id === runnerId) &&
        (tenantId === null || bot.tenant_id === tenantId);
      if (!wanted) send(connection.socket, { type: "remove_bot", bot_id: botId });
    }
  }

  /**
   * Keeps what a runner's bots use now on their records, for status and list on any replica. A
   * runner speaks only for bots whose jobs it holds.
   */
  private async botStats(connection: Connection, samples: BotStats[]): Promise<void> {
    const held = [...connection.running.keys()];
    for (const sample of samples) {
      const bot = await this.store.bots.get(sample.bot_id);
      if (!bot?.run_id || bot.state !== "running") continue;
      const prefix = botJobPrefix(bot.run_id);
      if (!held.some((jobId) => jobId.startsWith(prefix))) continue;
      await this.store.bots.update(
        bot.id,
        { memory_bytes: sample.memory_bytes, cpu_percent: sample.cpu_percent, stats_at: sample.at },
        { ifState: ["running"] },
      );
    }
  }

  /** Whether `connection` may speak for this job: it is the runner's live link and holds the lease. */
  private owns(connection: Connection, jobId: string): boolean {
    // `running` holds exactly the jobs leased to this connection: filled by claims and the
    // hello inventory, emptied when a job ends, expires or is given back. No store read per batch.
    return this.connections.get(connection.info.id) === connection && connection.running.has(jobId);
  }

  private ignoreReport(connection: Connection, message: { type: string; job_id: string }): void {
    this.logger.warn(
      { runnerId: connection.info.id, jobId: message.job_id, message: message.type },
      "refused a report on a job not leased to this runner",
    );
    send(connection.socket, {
      type: "error",
      code: "FORBIDDEN",
      message: `job ${message.job_id} is not leased to runner ${connection.info.id}; its ${message.type} was ignored`,
    });
  }

  private async handle(
    connection: Connection,
    message: Exclude<RunnerMessage, { type: "hello" }>,
  ): Promise<void> {
    const runnerId = connection.info.id;
    switch (message.type) {
      case "heartbeat":
        await this.store.runners.touch(runnerId, new Date().toISOString());
        // Only the jobs this connection holds: a job another replica handed to this runner over
        // a socket that no longer reaches it must not be kept alive by these heartbeats.
        await this.store.jobs.renewLeases(runnerId, this.timings.leaseMs, [...connection.running.keys()]);
        send(connection.socket, { type: "heartbeat" });
        if (message.bots.length > 0) await this.botStats(connection, message.bots);
        break;
      case "draining":
        connection.draining = true;
        this.logger.info({ runnerId }, "runner draining: no new work for it");
        break;
      case "accept": {
        if (!this.owns(connection, message.job_id)) return this.ignoreReport(connection, message);
        const job = await this.store.jobs.update(
          message.job_id,
          { status: "running" },
          { ifStatus: ["assigned"] },
        );
        if (job) await this.broker.accepted(job, runnerId);
        break;
      }
      case "events": {
        if (!this.owns(connection, message.job_id)) return this.ignoreReport(connection, message);
        const outcome = await this.broker.events(message.job_id, message.batch, message.events, runnerId);
        if (outcome === "unknown") send(connection.socket, { type: "drop", job_id: message.job_id });
        else send(connection.socket, { type: "ack", job_id: message.job_id, batch: message.batch });
        break;
      }
      case "finished": {
        const job = await this.store.jobs.get(message.job_id);
        if (job?.status === "done" && job.runner_id === runnerId) {
          // Its result was stored before the runner heard so; say it again.
          send(connection.socket, { type: "done", job_id: message.job_id });
          connection.running.delete(message.job_id);
          break;
        }
        if (!this.owns(connection, message.job_id)) return this.ignoreReport(connection, message);
        const outcome = await this.broker.finished(message.job_id, message.batches, message.result, runnerId);
        if (outcome === "done") send(connection.socket, { type: "done", job_id: message.job_id });
        if (outcome === "unknown") send(connection.socket, { type: "drop", job_id: message.job_id });
        connection.running.delete(message.job_id);
        this.dispatch();
        break;
      }
      case "refuse": {
        if (!this.owns(connection, message.job_id)) return this.ignoreReport(connection, message);
        connection.running.delete(message.job_id);
        const outcome = await this.broker.refused(message.job_id, runnerId, message.reason);
        // Offered again once its back-off has passed: nothing else would wake a server alone.
        if (typeof outcome === "object") setTimeout(() => this.dispatch(), outcome.retryInMs + 20).unref();
        this.dispatch();
        break;
      }
      case "abandoned": {
        if (!this.owns(connection, message.job_id)) return this.ignoreReport(connection, message);
        connection.running.delete(message.job_id);
        // Never started: it goes back to the queue for another runner. Started: it is lost.
        const requeued = await this.store.jobs.update(
          message.job_id,
          { status: "queued", runner_id: null, lease_expires_at: null },
          { ifStatus: ["assigned"] },
        );
        const job = requeued ? undefined : await this.store.jobs.get(message.job_id);
        if (job) await this.broker.lost(job, `runner ${runnerId} gave the job up: ${message.reason}`);
        send(connection.socket, { type: "drop", job_id: message.job_id });
        this.dispatch();
        break;
      }
      default:
        assertExhaustive(message, "runner message");
    }
  }

  /** Hands out no more work, and waits up to `graceMs` for the jobs runners hold to finish. */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + graceMs;
    // Bots never finish on their own: their containers run on, and their jobs come back after.
    const busy = (): boolean =>
      [...this.connections.values()].some((c) => [...c.running.values()].some((kind) => kind !== "bot"));
    while (busy() && Date.now() < deadline) await delay(Math.min(100, Math.max(1, deadline - Date.now())));
  }

  /** Hands queued jobs to connected runners with free capacity. */
  dispatch(): void {
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
          for (const connection of this.connections.values()) await this.fill(connection);
        } while (this.dispatchAgain);
      } catch (error) {
        this.logger.error({ err: error }, "dispatch failed");
      } finally {
        this.dispatching = false;
      }
    })();
  }

  /**
   * Hands a runner jobs while it has room: `capacity` counts its work (steps, agent turns); bots,
   * mostly idle containers that live for hours, have slots of their own (maxBotsPerRunner).
   */
  private async fill(connection: Connection): Promise<void> {
    const { info } = connection;
    while (!connection.draining && connection.socket.readyState === connection.socket.OPEN) {
      const held = [...connection.running.values()];
      const bots = held.filter((kind) => kind === "bot").length;
      const workRoom = held.length - bots < info.capacity;
      const botRoom = bots < maxBotsPerRunner;
      // Only the kinds it has a handler for: a runner offered a job it cannot run would refuse it.
      const kinds = info.kinds.filter((kind) => (kind === "bot" ? botRoom : workRoom));
      if (kinds.length === 0) return;
      const job = await this.store.jobs.claim(
        {
          id: info.id,
          group: info.group,
          labels: [...info.labels, `runner:${info.id}`],
          tenant_id: info.tenant_id,
          shared: info.shared,
          isolation: info.isolation,
          replica_id: this.replica.id,
          onlyTypes: kinds,
        },
        this.timings.leaseMs,
      );
      if (!job) return;
      const assignment = readJob(job);
      if (!assignment) {
        await this.broker.lost(job, "its stored payload no longer matches its kind");
        continue;
      }
      connection.running.set(job.id, job.type);
      send(connection.socket, {
        type: "assign",
        job: assignment,
        lease_expires_at: job.lease_expires_at ?? new Date(Date.now() + this.timings.leaseMs).toISOString(),
      });
    }
  }

  cancel(jobId: string, runnerId: string): boolean {
    const connection = this.connections.get(runnerId);
    if (!connection?.running.has(jobId) || connection.socket.readyState !== connection.socket.OPEN)
      return false;
    send(connection.socket, { type: "cancel", job_id: jobId });
    return true;
  }

  private async expireLeases(): Promise<void> {
    try {
      for (const job of await this.store.jobs.expired(new Date().toISOString())) {
        await this.broker.lost(job, `runner ${job.runner_id} stopped heartbeating; its lease expired`);
        const connection = job.runner_id ? this.connections.get(job.runner_id) : undefined;
        if (connection) {
          connection.running.delete(job.id);
          send(connection.socket, { type: "drop", job_id: job.id });
        }
      }
    } catch (error) {
      this.logger.error({ err: error }, "lease check failed");
    }
  }

  /**
   * A runner token was revoked: every socket opened with it here closes now (code 4001). Its
   * runners are told to drop their jobs, which end as lost (retried or interrupted as their runs
   * say), and the runners go offline. A runner of the token still saying hello is closed too.
   */
  async revokeToken(tokenId: string): Promise<string[]> {
    const ended: string[] = [];
    for (const [socket, id] of this.socketTokens) {
      if (id !== tokenId) continue;
      this.socketTokens.delete(socket);
      const connection = [...this.connections.values()].find((c) => c.socket === socket);
      if (connection) {
        this.connections.delete(connection.info.id);
        for (const jobId of connection.running.keys()) send(socket, { type: "drop", job_id: jobId });
      }
      socket.close(revokedCloseCode, "runner token revoked");
      if (!connection) continue;
      const runnerId = connection.info.id;
      ended.push(runnerId);
      await this.store.runners.setStatus(runnerId, "offline", new Date().toISOString(), {
        replicaId: this.replica.id,
      });
      for (const job of await this.store.jobs.list({ runnerId, statuses: ["assigned", "running"] }))
        await this.broker.lost(job, `runner ${runnerId}'s token was revoked`);
      this.logger.warn({ runnerId, tokenId }, "runner disconnected: its token was revoked");
    }
    if (ended.length > 0) this.dispatch();
    return ended;
  }

  /** The runner tokens of the sockets open here. */
  connectedTokens(): string[] {
    return [...new Set(this.socketTokens.values())];
  }

  /** Runs each runner holds right now, for `GET /api/runners`. */
  runningJobs(runnerId: string): string[] {
    return [...(this.connections.get(runnerId)?.running.keys() ?? [])];
  }

  get connectedRunners(): number {
    return this.connections.size;
  }

  async close(): Promise<void> {
    clearInterval(this.leaseTimer);
    clearInterval(this.dispatchTimer);
    for (const connection of this.connections.values()) connection.socket.close(1001, "server stopping");
    this.connections.clear();
    await new Promise<void>((resolve) => this.sockets.close(() => resolve()));
  }
}

/**
 * Why a runner saying it is shared may not be (DESIGN.md section 10): a tenant's runner serves
 * that tenant alone, and a runner that does not isolate would let one tenant's steps read
 * another's. Undefined when it is not shared or may be.
 */
function sharingRefusal(
  info: RunnerInfo,
  token: TokenRecord,
): { code: "RUNNER_SHARED_TENANT" | "RUNNER_CANNOT_ISOLATE"; message: string } | undefined {
  if (!info.shared) return undefined;
  if (info.tenant_id !== null) {
    const why =
      token.tenant_id !== null
        ? `its runner token belongs to tenant "${token.tenant_id}"`
        : `it says tenant "${info.tenant_id}" (RUNYARD_TENANT_ID / ADOS_TENANT_ID)`;
    return {
      code: "RUNNER_SHARED_TENANT",
      message: `runner "${info.id}" asks to be shared, but ${why}: a tenant's runner serves that tenant alone`,
    };
  }
  if (info.isolation === "none") {
    return {
      code: "RUNNER_CANNOT_ISOLATE",
      message: `runner "${info.id}" asks to be shared but isolates nothing (isolation "none"): its steps could read each other's files and environment`,
    };
  }
  return undefined;
}

function send(socket: WebSocket, message: ServerMessage): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
}
