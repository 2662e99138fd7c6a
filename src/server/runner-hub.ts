import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { type WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../core/logger.js";
import { type RunnerInfo, RunnerMessage, runnerSocketPath, type ServerMessage } from "../runner/protocol.js";
import type { Store, TokenRecord } from "../store/types.js";
import type { JobBroker, JobTransport } from "./job-broker.js";

export interface HubTimings {
  /** How often runners heartbeat. */
  heartbeatMs: number;
  /** A job's lease; heartbeats renew it. A runner silent this long loses its jobs. */
  leaseMs: number;
}

interface Connection {
  info: RunnerInfo;
  socket: WebSocket;
  running: Set<string>;
}

/**
 * The server's end of the runner protocol (DESIGN.md section 6): runners connect here, get
 * jobs up to their capacity, heartbeat to keep their leases, and report output and results.
 */
export class RunnerHub implements JobTransport {
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  private readonly connections = new Map<string, Connection>();
  private dispatching = false;
  private dispatchAgain = false;
  private leaseTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly broker: JobBroker,
    private readonly timings: HubTimings,
    private readonly logger: Logger,
    private readonly onJobAccepted: (runId: string, runnerId: string) => void,
  ) {
    broker.transport = this;
  }

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
    this.leaseTimer = setInterval(() => void this.expireLeases(), Math.min(500, this.timings.leaseMs / 4));
  }

  private async authenticate(request: IncomingMessage): Promise<TokenRecord | undefined> {
    const header = request.headers.authorization ?? "";
    const secret = header.startsWith("Bearer ") ? header.slice(7).trim() : "";
    return secret ? this.store.findToken(secret) : undefined;
  }

  private accept(socket: WebSocket, token: TokenRecord): void {
    let connection: Connection | undefined;
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
            connection = await this.hello(socket, token, message.runner, message.jobs);
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
      if (connection && this.connections.get(connection.info.id) === connection) {
        this.connections.delete(connection.info.id);
        void this.store.setRunnerStatus(connection.info.id, "offline", new Date().toISOString());
        this.logger.info({ runnerId: connection.info.id }, "runner disconnected");
      }
    });
  }

  private async hello(
    socket: WebSocket,
    token: TokenRecord,
    advertised: RunnerInfo,
    held: string[],
  ): Promise<Connection> {
    // A runner token bound to a group or tenant decides them; the runner cannot claim others.
    const info: RunnerInfo = {
      ...advertised,
      group: token.group ?? advertised.group,
      tenant_id: token.tenant_id ?? advertised.tenant_id,
    };
    const previous = this.connections.get(info.id);
    if (previous && previous.socket !== socket) previous.socket.close(4000, "replaced by a new connection");
    const now = new Date().toISOString();
    await this.store.upsertRunner({ ...info, status: "online", connected_at: now, last_heartbeat_at: now });
    const connection: Connection = { info, socket, running: new Set() };
    this.connections.set(info.id, connection);
    send(socket, {
      type: "welcome",
      runner_id: info.id,
      heartbeat_ms: this.timings.heartbeatMs,
      lease_ms: this.timings.leaseMs,
    });
    for (const jobId of held) {
      const job = await this.store.getJob(jobId);
      if (job && job.runner_id === info.id && (job.status === "assigned" || job.status === "running")) {
        connection.running.add(jobId);
      } else if (job?.status !== "done") {
        send(socket, { type: "drop", job_id: jobId });
      }
    }
    await this.store.renewLeases(info.id, this.timings.leaseMs);
    this.logger.info(
      { runnerId: info.id, group: info.group, resumed: connection.running.size },
      "runner connected",
    );
    this.dispatch();
    return connection;
  }

  private async handle(
    connection: Connection,
    message: Exclude<RunnerMessage, { type: "hello" }>,
  ): Promise<void> {
    const runnerId = connection.info.id;
    switch (message.type) {
      case "heartbeat":
        await this.store.touchRunner(runnerId, new Date().toISOString());
        await this.store.renewLeases(runnerId, this.timings.leaseMs);
        send(connection.socket, { type: "heartbeat" });
        break;
      case "accept": {
        const job = await this.store.updateJob(
          message.job_id,
          { status: "running" },
          { ifStatus: ["assigned"] },
        );
        if (job) {
          this.broker.pin(job, runnerId);
          this.onJobAccepted(job.run_id, runnerId);
        }
        break;
      }
      case "output": {
        const outcome = await this.withWaiter(message.job_id, () =>
          this.broker.output(message.job_id, message.batch, message.chunks),
        );
        if (outcome === "unknown") send(connection.socket, { type: "drop", job_id: message.job_id });
        else send(connection.socket, { type: "ack", job_id: message.job_id, batch: message.batch });
        break;
      }
      case "finished": {
        const job = await this.store.getJob(message.job_id);
        if (job?.status === "done") {
          send(connection.socket, { type: "done", job_id: message.job_id });
        } else {
          const outcome = await this.withWaiter(message.job_id, async () =>
            (await this.broker.finished(message.job_id, message.batches, message.result)) === "done"
              ? "stored"
              : "duplicate",
          );
          if (outcome === "stored") send(connection.socket, { type: "done", job_id: message.job_id });
          if (outcome === "unknown") send(connection.socket, { type: "drop", job_id: message.job_id });
        }
        connection.running.delete(message.job_id);
        this.dispatch();
        break;
      }
      default: {
        const never: never = message;
        throw new Error(`unhandled runner message ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Runs `fn` once an engine waits for the job. Right after a server restart a runner can report
   * before the resumed engine has asked for its job again; give it a moment.
   */
  private async withWaiter(
    jobId: string,
    fn: () => Promise<"stored" | "duplicate" | "unknown">,
  ): Promise<"stored" | "duplicate" | "unknown"> {
    for (let waited = 0; !this.broker.isWaited(jobId) && waited < 5000; waited += 25) {
      const job = await this.store.getJob(jobId);
      if (!job || job.status === "done" || job.status === "lost") return "unknown";
      await delay(25);
    }
    return this.broker.isWaited(jobId) ? fn() : "unknown";
  }

  /** Hands queued jobs to connected runners with free capacity. */
  dispatch(): void {
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

  private async fill(connection: Connection): Promise<void> {
    const { info } = connection;
    while (
      connection.running.size < info.capacity &&
      connection.socket.readyState === connection.socket.OPEN
    ) {
      const job = await this.store.claimJob(
        {
          id: info.id,
          group: info.group,
          labels: [...info.labels, `runner:${info.id}`],
          tenant_id: info.tenant_id,
        },
        this.timings.leaseMs,
      );
      if (!job) return;
      connection.running.add(job.id);
      send(connection.socket, {
        type: "assign",
        job_id: job.id,
        request: job.payload as never,
        lease_expires_at: job.lease_expires_at ?? new Date(Date.now() + this.timings.leaseMs).toISOString(),
      });
    }
  }

  cancel(jobId: string, runnerId: string): boolean {
    const connection = this.connections.get(runnerId);
    if (!connection) return false;
    send(connection.socket, { type: "cancel", job_id: jobId });
    return true;
  }

  private async expireLeases(): Promise<void> {
    try {
      for (const job of await this.store.expiredJobs(new Date().toISOString())) {
        await this.broker.lost(job);
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

  /** Runs each runner holds right now, for `GET /api/runners`. */
  runningJobs(runnerId: string): string[] {
    return [...(this.connections.get(runnerId)?.running ?? [])];
  }

  get connectedRunners(): number {
    return this.connections.size;
  }

  async close(): Promise<void> {
    clearInterval(this.leaseTimer);
    for (const connection of this.connections.values()) connection.socket.close(1001, "server stopping");
    this.connections.clear();
    await new Promise<void>((resolve) => this.sockets.close(() => resolve()));
  }
}

function send(socket: WebSocket, message: ServerMessage): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
}
