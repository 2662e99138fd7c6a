import { errorTable, RunyardError } from "../core/errors.js";
import type { EventInput } from "../core/events.js";
import { assertExhaustive } from "../core/exhaustive.js";
import type { Logger } from "../core/logger.js";
import {
  type HeldJob,
  policyCloseCode,
  type RunnerInfo,
  RunnerMessage,
  revokedCloseCode,
  runnerInfoRefusal,
  type ServerMessage,
} from "../core/protocol.js";
import { type LinkWire, linkOpen, type RunnerLink } from "../core/runner-link.js";
import { connectionLost } from "../store/connection-loss.js";
import type { Store, TokenRecord } from "../store/index.js";
import { BotCalls } from "./bots/bot-calls.js";
import { botsToDisown, type FoundBots, recordBotStats } from "./bots/runner-bots.js";
import type { JobQueue } from "./job-queue.js";
import { maxJsonValues } from "./json-thread.js";
import { holdsMoreThan } from "./json-values.js";
import type { RunKeeper } from "./run-ends.js";
import { admitRunner } from "./runner-admission.js";

/**
 * Messages past this are read on the JSON thread. An ordinary batch (about 96 KiB of output, under 1 MiB
 * as JSON) reads here in a few ms; sent to the thread, a 200 MB step's output grew the server by 180 MB
 * (the thread's heap of parsed copies) and added a hop to every batch.
 */
const threadMinMessageBytes = 1024 * 1024;

/** WebSocket's "try again later": the message cannot be stored now (database away, start unstored). */
const storeUnavailableCloseCode = 1013;

/** The messages handled in order: a bot call's answer is taken at once (`take`). */
type ChainedMessage = Exclude<RunnerMessage, { type: "bot_reply" | "bot_reply_part" }>;

/** A message's text read: its JSON, or why it was not read. */
type Read = { json: unknown } | { tooMany: true };

/**
 * `JSON.parse` on the event loop, under `threadMinMessageBytes`; non-JSON reads as nothing. Held to the
 * thread's cap on values before the schema walks it: 350,000 empty events under 1 MiB took it 300 ms.
 */
function readHere(text: string): Read {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { json: undefined };
  }
  // Each value takes at least two characters ("0,"): a shorter text cannot pass the cap, so is not walked.
  if (text.length < 2 * maxJsonValues) return { json };
  return holdsMoreThan(json, maxJsonValues) ? { tooMany: true } : { json };
}

/** What a session needs from the hub that keeps every session of this replica. */
export interface SessionHost {
  /** Runners recorded online, their tokens checked on hello, their bots' stats. */
  readonly store: Pick<Store, "runners" | "tokens" | "bots" | "botHistory">;
  readonly queue: JobQueue;
  readonly logger: Logger;
  readonly replicaId: string;
  /** The install the runners' containers are labelled with (`welcome`). */
  readonly installId: string;
  readonly heartbeatMs: number;
  /** The session said hello as its runner: it is now that runner's live link here (an older one closes). */
  register(session: RunnerSession): void;
  unregister(session: RunnerSession): void;
  /** Whether the session is its runner's live link here. */
  isLive(session: RunnerSession): boolean;
  /**
   * Offer queued jobs to the runners with room. "queue" (the default): the queue may hold work it
   * did not (a job queued or back, a back-off over, the fleet's word, the sweep), which moves
   * `queueChanges`; "room": only a runner's room grew (a job of its ended).
   */
  dispatch(why?: "queue" | "room"): void;
  /** How many times `dispatch` said the queue may have changed (RunnerSession.fill). */
  readonly queueChanges: number;
  /** Tells the session which of the runs its runner named at hello have ended (RunEnds). */
  checkRuns?(session: RunnerSession, runIds: readonly string[]): void;
  /** Reads a large message on the JSON thread; rejects past `maxJsonValues`. Absent: read on the loop. */
  readJson?(text: string): Promise<unknown>;
}

/**
 * One runner's socket (docs/architecture.md, "The life of a run"): its hello, the welcome, and each message
 * turned into a JobQueue call and an answer. Its only job state is the jobs leased over this socket, the
 * only ones it may accept, report on or finish.
 */
export class RunnerSession implements RunKeeper {
  /** Set by a hello whose runner id is this token's. */
  info: RunnerInfo | undefined;
  /**
   * Set once the hello is settled (inventory taken, welcome sent); only then is work offered. A job assigned
   * during the inventory was given back as never received, and another runner ran a step already begun
   * (a chaos soak's kill -9 of a replica found it).
   */
  private welcomed = false;
  /** Job id -> kind, of the jobs leased to this connection. */
  readonly running = new Map<string, string>();
  /**
   * The runs whose folders its runner keeps until `run_ended`: those named at hello and those of steps
   * given here. Only for a runner that names them at hello (`runs`); an older one knows no `run_ended`.
   */
  readonly keeps = new Set<string>();
  private tellsEnds = false;
  /** Jobs assigned over this connection that the runner has not said it took up. */
  private readonly unaccepted = new Set<string>();
  /** `queueChanges` when its last claim, with room for every kind it runs, found nothing queued. */
  private nothingQueuedAt: number | undefined;
  /** The runner is shutting down and takes no new work. */
  draining = false;
  /** Messages of one runner are handled in order, heartbeats aside. */
  private chain = Promise.resolve();
  /** A heartbeat's lease renewal is in flight. */
  private beating = false;
  /** A message was not stored (database away, job's start unstored): the socket closes; all comes again. */
  private storeLost = false;
  /** Bot calls sent over this socket and waiting for their `bot_reply`. */
  readonly calls = new BotCalls((message) => this.send(message));
  /** A large message is being read off the loop: the messages after it wait for it, in order. */
  private reading: Promise<void> | undefined;
  /** The socket was closed for a message no runner sends: nothing more it sent is read. */
  private cutOff = false;

  /** The messages of this turn are held for one write (`send`). */
  private corked = false;

  constructor(
    readonly socket: RunnerLink,
    readonly token: TokenRecord,
    private readonly host: SessionHost,
    /**
     * The TCP socket under a WebSocket link: what one turn of the event loop sends it (an ack and
     * the next assign, the answers to several jobs' messages read at once) goes out in one write,
     * not one each (each a system call and a wake of the runner). A socket `ws` terminates in the
     * same turn (a runner past its 60 unanswered pings) loses that turn's messages, as it loses
     * what it had not written yet anyway. Absent for an in-process link.
     */
    private readonly wire?: LinkWire,
  ) {
    socket.on("message", (data) => this.read(String(data)));
    socket.on("close", () => {
      this.calls.closed();
      host.unregister(this);
    });
  }

  /**
   * Acts on messages in order. One past `threadMinMessageBytes` is read on the JSON thread: a runner's
   * 64 MiB message held every tenant's requests while the loop read it. The socket takes at most
   * `maxRunnerMessageBytes` (protocol.ts) a message, the thread at most 50,000 values.
   */
  private read(text: string): void {
    const readJson = this.host.readJson?.bind(this.host);
    const large = text.length > threadMinMessageBytes && readJson !== undefined;
    if (!large && this.reading === undefined) {
      this.take(readHere(text));
      return;
    }
    const read: Promise<Read> =
      large && readJson
        ? readJson(text).then(
            (json) => ({ json }),
            (error: unknown) =>
              error instanceof RunyardError ? { tooMany: true as const } : { json: undefined },
          )
        : Promise.resolve(readHere(text));
    const turn: Promise<void> = (this.reading ?? Promise.resolve())
      .then(() => read)
      .then((outcome) => this.take(outcome))
      .finally(() => {
        if (this.reading === turn) this.reading = undefined;
      });
    this.reading = turn;
  }

  /** One message read: answered, or queued behind the runner's earlier ones. */
  private take(read: Read): void {
    if (this.cutOff) return;
    if ("tooMany" in read) {
      this.cutOff = true;
      this.host.logger.warn(
        { runnerId: this.info?.id, tokenId: this.token.id },
        `closed a runner's socket: a message held more than ${maxJsonValues} JSON values`,
      );
      this.socket.close(policyCloseCode, `a runner's message may hold at most ${maxJsonValues} JSON values`);
      return;
    }
    const message = this.validate(read.json);
    if (!message) return;
    // Heartbeats and bot answers are not queued behind stored batches: on a busy store those can take
    // longer than a lease, and the working runner would be taken for dead (its jobs lost).
    if (message.type === "bot_reply") {
      this.calls.answer(message.call_id, message.reply);
      return;
    }
    if (message.type === "bot_reply_part") {
      this.calls.part(message.call_id, message.body_base64);
      return;
    }
    if (message.type === "heartbeat" && this.info) {
      void this.heartbeat(this.info.id, message.bots).catch((error: unknown) =>
        this.failed(error, "runner heartbeat failed"),
      );
      return;
    }
    this.chain = this.chain
      // Once a message could not be stored, none after it is: all come again on the next connection.
      .then(() => (this.storeLost ? undefined : this.receive(message)))
      .catch((error: unknown) => this.failed(error, "runner message failed"));
  }

  /**
   * A message could not be acted on. With the database away (restart, failover) the socket closes: the
   * runner keeps its work, reconnects, and resends what was not acked.
   */
  private failed(error: unknown, what: string): void {
    // The driver's own error too: a message dropped with the socket open is never resent, its job stuck.
    if ((error instanceof RunyardError && error.code === "STORE_UNAVAILABLE") || connectionLost(error)) {
      this.storeLost = true;
      this.host.logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        `${what}: the database is unavailable; closing the runner's socket`,
      );
      if (this.open) this.socket.close(storeUnavailableCloseCode, "the server's database is unavailable");
      return;
    }
    this.host.logger.error({ err: error }, what);
  }

  /**
   * A batch not to be stored yet, nor anything after it (a later batch stored first would make it a
   * duplicate): the socket closes, and the runner resends every unacked batch in order on reconnecting.
   */
  private resendLater(jobId: string): void {
    this.storeLost = true;
    if (this.open)
      this.socket.close(
        storeUnavailableCloseCode,
        `job ${jobId}'s start is not stored yet; send its events again`,
      );
  }

  get open(): boolean {
    return this.socket.readyState === linkOpen;
  }

  send(message: ServerMessage): void {
    if (!this.open) return;
    if (this.wire && !this.corked) {
      this.corked = true;
      this.wire.cork();
      process.nextTick(() => {
        this.corked = false;
        this.wire?.uncork();
      });
    }
    this.socket.send(JSON.stringify(message));
  }

  /** The message, or undefined once the runner was told why it is not one. */
  private validate(json: unknown): RunnerMessage | undefined {
    const parsed = RunnerMessage.safeParse(json);
    if (!parsed.success) {
      if (!this.info && (json as { type?: unknown } | undefined)?.type === "hello") {
        this.refuseHello((json as { runner?: unknown }).runner, parsed.error.issues[0]?.message ?? "");
        return undefined;
      }
      // The first problem only: a message of 60,000 bad events had 60,000 sent back.
      const [first, ...more] = parsed.error.issues;
      const where = first?.path.join(".") || "message";
      const message = `${where}: ${first?.message ?? "invalid"}${more.length > 0 ? ` (and ${more.length} more problems)` : ""}`;
      this.send({ type: "error", code: "INVALID_INPUT", message: message.slice(0, 1000) });
      return undefined;
    }
    return parsed.data;
  }

  /**
   * A hello the protocol does not take (a field past its cap) closes the socket like any refused hello,
   * so the runner stops and says why instead of a welcome; the first few problems are named, never values.
   */
  private refuseHello(runner: unknown, problem: string): void {
    const refusal = runnerInfoRefusal(runner);
    const message = refusal?.message ?? `the runner's hello was refused: ${problem}`;
    this.send({
      type: "error",
      code: "INVALID_INPUT",
      message,
      ...(refusal?.hint ? { hint: refusal.hint } : {}),
    });
    this.socket.close(4003, "hello refused");
  }

  /** Renews the leases of the jobs this socket holds and answers; one renewal at a time. */
  private async heartbeat(
    runnerId: string,
    bots: Extract<RunnerMessage, { type: "heartbeat" }>["bots"],
  ): Promise<void> {
    if (this.beating) {
      this.send({ type: "heartbeat" });
      return;
    }
    this.beating = true;
    try {
      const { store, queue } = this.host;
      await store.runners.touch(runnerId, new Date().toISOString());
      await queue.renew(runnerId, [...this.running.keys()]);
      this.send({ type: "heartbeat" });
      if (bots.length > 0) await recordBotStats(store, [...this.running.keys()], bots);
    } finally {
      this.beating = false;
    }
  }

  private async receive(message: ChainedMessage): Promise<void> {
    if (message.type === "hello") {
      if (this.info) {
        this.send({ type: "error", code: "INVALID_INPUT", message: "say hello only once" });
        return;
      }
      await this.hello(
        message.runner,
        message.jobs,
        message.reaped,
        {
          ids: message.bots,
          ...(message.bot_installs ? { installs: message.bot_installs } : {}),
        },
        message.runs,
      );
      return;
    }
    if (!this.info) {
      this.send({ type: "error", code: "INVALID_INPUT", message: "say hello first" });
      return;
    }
    await this.handle(this.info.id, message);
  }

  private async hello(
    advertised: RunnerInfo,
    held: HeldJob[],
    reaped: string[],
    bots: FoundBots,
    runs: string[] | undefined,
  ): Promise<void> {
    const { store, queue, logger } = this.host;
    const admitted = admitRunner(this.token, advertised);
    if ("code" in admitted) {
      logger.warn(
        { runnerId: advertised.id, tokenId: this.token.id, code: admitted.code },
        `refused a runner: ${admitted.reason}`,
      );
      this.send({ type: "error", code: admitted.code, message: admitted.message, hint: admitted.hint });
      this.socket.close(4003, admitted.reason);
      return;
    }
    const info = admitted;
    // A revocation between the upgrade's check and this socket's counting among its sessions missed it.
    if (!(await store.tokens.get(this.token.id))) {
      this.socket.close(revokedCloseCode, "runner token revoked");
      return;
    }
    const now = new Date().toISOString();
    const record = await store.runners.upsert({
      ...info,
      status: "online",
      connected_at: now,
      last_heartbeat_at: now,
      token_id: this.token.id,
      replica_id: this.host.replicaId,
    });
    if (!record) {
      // Someone else's id: refuse, and leave the rightful runner and its jobs alone.
      logger.warn(
        { runnerId: info.id, tokenId: this.token.id },
        "refused a hello under another token's runner id",
      );
      this.send({
        type: "error",
        code: "RUNNER_ID_TAKEN",
        message: `runner id "${info.id}" belongs to another runner token`,
        hint: errorTable.RUNNER_ID_TAKEN.hint,
      });
      this.socket.close(4003, "runner id belongs to another token");
      return;
    }
    this.info = info;
    // Kept before the session is live: a run ending from now on is told; one ended before, by `checkRuns`.
    this.tellsEnds = runs !== undefined;
    for (const runId of runs ?? []) this.keeps.add(runId);
    this.host.register(this);
    const inventory = await queue.inventory(info.id, held, reaped);
    for (const [jobId, kind] of inventory.resumed) this.running.set(jobId, kind);
    for (const jobId of inventory.drop) this.send({ type: "drop", job_id: jobId });
    for (const jobId of inventory.cancel) this.send({ type: "cancel", job_id: jobId });
    // The welcome names the install before any remove_bot: the runner removes only its install's.
    this.send({
      type: "welcome",
      runner_id: info.id,
      heartbeat_ms: this.host.heartbeatMs,
      lease_ms: queue.leaseMs,
      install_id: this.host.installId,
      run_ends: true,
      compact_job_reports: true,
    });
    if (runs && runs.length > 0) this.host.checkRuns?.(this, runs);
    for (const botId of await botsToDisown(store, info, bots, this.host.installId))
      this.send({ type: "remove_bot", bot_id: botId });
    logger.info({ runnerId: info.id, group: info.group, resumed: this.running.size }, "runner connected");
    this.welcomed = true;
    this.host.dispatch();
  }

  /** The tenant of its runner token: a tenant's runner learns only of that tenant's runs. */
  get tenantId(): string | null {
    return this.token.tenant_id ?? null;
  }

  runEnded(runId: string): void {
    if (this.keeps.delete(runId)) this.send({ type: "run_ended", run_id: runId });
  }

  /** Whether this session may speak for the job: it is the runner's live link and holds the lease. */
  private owns(jobId: string): boolean {
    // `running` holds exactly the jobs leased to this connection: no store read per batch.
    return this.host.isLive(this) && this.running.has(jobId);
  }

  private ignoreReport(runnerId: string, message: { type: string; job_id: string }): void {
    this.host.logger.warn(
      { runnerId, jobId: message.job_id, message: message.type },
      "refused a report on a job not leased to this runner",
    );
    this.send({
      type: "error",
      code: "FORBIDDEN",
      message: `job ${message.job_id} is not leased to runner ${runnerId}; its ${message.type} was ignored`,
    });
  }

  /** A batch of a job's events, from `events` or inside `finished`, stored with the queue. */
  private async storeBatch(
    runnerId: string,
    jobId: string,
    batch: number,
    events: EventInput[],
  ): ReturnType<JobQueue["events"]> {
    // A report means it took the job up: a missing accept is taken as said, so the step's start is
    // stored before this output.
    if (this.unaccepted.delete(jobId) && !this.host.queue.acceptedByBatch(jobId, runnerId))
      await this.host.queue.accept(jobId, runnerId);
    return this.host.queue.events(jobId, batch, events, runnerId);
  }

  private async handle(runnerId: string, message: Exclude<ChainedMessage, { type: "hello" }>): Promise<void> {
    const { queue } = this.host;
    switch (message.type) {
      case "heartbeat":
        await this.heartbeat(runnerId, message.bots);
        break;
      case "draining":
        this.draining = true;
        this.host.logger.info({ runnerId }, "runner draining: no new work for it");
        break;
      case "accept":
        if (!this.owns(message.job_id)) return this.ignoreReport(runnerId, message);
        this.unaccepted.delete(message.job_id);
        await queue.accept(message.job_id, runnerId);
        break;
      case "events": {
        if (!this.owns(message.job_id)) return this.ignoreReport(runnerId, message);
        const outcome = await this.storeBatch(runnerId, message.job_id, message.batch, message.events);
        if (outcome === "held") return this.resendLater(message.job_id);
        // Ended meanwhile (a cancel of a parked run ends its job at once): the runner forgets it on
        // `drop` and never says `finished`, so its room comes back now.
        if (outcome === "unknown") this.dropJob(message.job_id);
        else this.send({ type: "ack", job_id: message.job_id, batch: message.batch });
        break;
      }
      case "finished": {
        if (!this.owns(message.job_id)) {
          // Its result was stored before the runner heard so (over an earlier socket); say it again.
          if (!(await queue.doneBy(message.job_id, runnerId))) return this.ignoreReport(runnerId, message);
          this.send({ type: "done", job_id: message.job_id });
          this.running.delete(message.job_id);
          break;
        }
        if (message.events) {
          // Its last batch came inside: stored as an `events` message would be, then the result.
          const stored = await this.storeBatch(runnerId, message.job_id, message.batches, message.events);
          if (stored === "held") return this.resendLater(message.job_id);
          if (stored === "unknown") {
            this.dropJob(message.job_id);
            break;
          }
        }
        // A result with nothing before it stands for the accept: the job ends from `assigned`.
        this.unaccepted.delete(message.job_id);
        const outcome = await queue.finished(message.job_id, message.batches, message.result, runnerId);
        if (outcome === "done") this.send({ type: "done", job_id: message.job_id });
        if (outcome === "unknown") this.send({ type: "drop", job_id: message.job_id });
        this.running.delete(message.job_id);
        this.host.dispatch("room");
        break;
      }
      case "refuse": {
        if (!this.owns(message.job_id)) return this.ignoreReport(runnerId, message);
        this.running.delete(message.job_id);
        this.unaccepted.delete(message.job_id);
        await this.refused(message.job_id, runnerId, message.reason);
        break;
      }
      case "abandoned": {
        if (!this.owns(message.job_id)) return this.ignoreReport(runnerId, message);
        this.running.delete(message.job_id);
        this.unaccepted.delete(message.job_id);
        // A stopping runner drains first, and its jobs go straight back. One giving work back while taking
        // more would get the same job again in a loop: that is a refusal, with its back-off and limit.
        if (this.draining) {
          await queue.returned(message.job_id, runnerId, message.reason);
          this.host.dispatch();
        } else
          await this.refused(message.job_id, runnerId, `gave it back without draining: ${message.reason}`);
        this.send({ type: "drop", job_id: message.job_id });
        break;
      }
      default:
        assertExhaustive(message, "runner message");
    }
  }

  /** Tells the runner to forget a job that is no longer its own, and frees its room for more work. */
  private dropJob(jobId: string): void {
    this.running.delete(jobId);
    this.unaccepted.delete(jobId);
    this.send({ type: "drop", job_id: jobId });
    this.host.dispatch("room");
  }

  /** A job the runner gave back unstarted: offered again after its back-off, failed at the limit. */
  private async refused(jobId: string, runnerId: string, reason: string): Promise<void> {
    // Offered again once its back-off has passed, by the queue (BackoffOffers, job-refusals.ts).
    await this.host.queue.refused(jobId, runnerId, reason);
    this.host.dispatch();
  }

  /** Hands the runner jobs while it has room and the queue has work for it. */
  async fill(): Promise<void> {
    while (this.info && this.welcomed && !this.draining && this.open) {
      // Its last claim had room for every kind it runs and found nothing, and the queue has not
      // changed since: a claim now would find nothing too (a statement a run, at its job's end).
      const changes = this.host.queueChanges;
      if (this.nothingQueuedAt === changes) return;
      const claimed = await this.host.queue.claimFor(this.info, [...this.running.values()]);
      if (claimed === "nothing queued") this.nothingQueuedAt = changes;
      if (!claimed || typeof claimed === "string") return;
      // No other job waited for it: the next turn of the loop returns unless the queue changed.
      if (claimed.nothingElseQueued) this.nothingQueuedAt = changes;
      const { assignment } = claimed;
      this.running.set(assignment.job.job_id, assignment.job.kind);
      // The runner keeps folders for its steps' runs (its RunFolders), until told they ended.
      if (this.tellsEnds && assignment.job.kind === "step") this.keeps.add(assignment.job.payload.run_id);
      this.unaccepted.add(assignment.job.job_id);
      this.send({ type: "assign", ...assignment });
    }
  }
}
