import { setTimeout as delay } from "node:timers/promises";
import { RunyardError, toErrorInfo } from "../../core/errors.js";
import { isFinalStatus, type RunEvent, type RunKind } from "../../core/events.js";
import type { Logger } from "../../core/logger.js";
import type { RunLogLimit, RunRecord, Store } from "../../store/index.js";
import { userBehind } from "../acting-for.js";
import type { EventBus } from "../event-bus.js";
import type { JobQueue } from "../job-queue.js";
import { RunSink, stamp } from "../run-sink.js";
import type { AgentRuns } from "./agent-runs.js";
import type { AgentRunSpec, SubmitAgentRunBody } from "./agent-spec.js";
import { type ParkableRun, ParkedRuns } from "./parked-runs.js";
import { finishedPatch, RunProjection } from "./projection.js";
import type { ActiveRun, PreparedRun, RunKindModule } from "./run-kind.js";
import type { RunOrigin, RunOwner } from "./run-origin.js";
import type { WorkflowRunSpec, WorkflowRuns } from "./workflow-runs.js";

/** A bot's stored output (its build's and its containers'): the newest 8 MiB. */
export const defaultMaxBotLogBytes = 8 * 1024 * 1024;

/** The modules of the kinds this server runs; a kind without one is refused at submit and recovery. */
export interface RunKinds {
  workflow: WorkflowRuns;
  agent?: AgentRuns;
  bot?: RunKindModule;
}

/** Runs that publish one run's branch, at most: each failed one may be asked again. */
const maxPublishAttempts = 10;
const failedStatuses: ReadonlySet<string> = new Set(["failed", "canceled", "timeout", "interrupted"]);

/** This server among the replicas, as the run service needs it. */
export interface RunReplica {
  id: string;
  /** Asks the replica carrying a run to cancel it. */
  askCancel(runId: string): void;
  /** A run of this replica's was adopted by another: the replica must stop at once. */
  fenced(why: string): void;
}

interface LiveRun extends ActiveRun, ParkableRun {
  controller: AbortController;
  /** Aborted by `close`: the server stops, the run does not. */
  halting: AbortController;
  done: Promise<void>;
  /** Its sink failed a write for good: this engine is dropped, another carries the run on. */
  lost?: boolean;
}

/** What the run service is told about this server's settings. */
export interface RunServiceSettings {
  /** Output stored per run; a bot's run keeps its newest `maxBotLogBytes` instead (rolling). */
  maxRunLogBytes: number;
  maxBotLogBytes?: number;
  /**
   * A workflow run still waiting for a runner this long is parked: its engine is dropped until a runner
   * takes up one of its jobs (docs/scale.md). Default `defaultParkQueuedAfterMs` (parked-runs.ts).
   */
  parkQueuedAfterMs?: number;
}

/** How often a run whose engine lost the database tries to go on again. */
const storeRetryMs = 1000;

/** The database was away (a restart or a failover): not the run's fault, nor a reason to end it. */
function storeAway(error: unknown): boolean {
  return error instanceof RunyardError && error.code === "STORE_UNAVAILABLE";
}

/**
 * The life of server runs of any kind: submitted and queued, carried out by their kind's module,
 * projected into their records, canceled, and carried on after a server restart.
 */
export class RunService {
  private readonly active = new Map<string, LiveRun>();
  /** Runs carried here without an engine, waiting for a runner. */
  private readonly parked: ParkedRuns;
  /** Runs whose engine lost the database, to be carried on once it answers again. */
  private readonly awaitingStore = new Set<string>();
  private closed = false;

  constructor(
    private readonly store: Pick<Store, "runs" | "events" | "bots" | "fleet" | "jobs" | "tokens" | "users">,
    private readonly bus: EventBus,
    private readonly kinds: RunKinds,
    /** Holds a restarted server's leases for their runners; drops the waits of runs parked here. */
    private readonly jobs: Pick<JobQueue, "holdLeases" | "park" | "endJobs">,
    private readonly logger: Logger,
    private readonly limits: RunServiceSettings,
    private readonly replica: RunReplica = {
      id: "local",
      askCancel: () => undefined,
      fenced: () => undefined,
    },
  ) {
    const service = {
      active: this.active,
      carryOn: (runs: readonly RunRecord[], why: string) => this.carryOn(runs, why),
    };
    this.parked = new ParkedRuns(service, store, jobs, logger, replica.id);
  }

  /** Validates and queues a workflow run; resolves with its record once `run.queued` is stored. */
  async submitWorkflow(spec: WorkflowRunSpec, owner: RunOwner, origin: RunOrigin): Promise<RunRecord> {
    return this.submit(
      "workflow",
      await this.kinds.workflow.prepare(spec, owner, origin.saved !== undefined),
      owner,
      origin,
    );
  }

  /** Validates and queues an agent run (one agent, or a fan-out). */
  async submitAgent(body: SubmitAgentRunBody, owner: RunOwner, origin: RunOrigin): Promise<RunRecord> {
    return this.submit("agent", await this.agents().prepare(body, owner), owner, origin);
  }

  /** As `submitAgent`, for a forge's issue: its git token is the forge's (docs/forges.md), never a body's. */
  async submitForgeAgent(
    body: SubmitAgentRunBody,
    forgeId: string,
    owner: RunOwner,
    origin: RunOrigin,
  ): Promise<RunRecord> {
    const prepared = await this.agents().prepare(body, owner);
    const spec = { ...(prepared.spec as AgentRunSpec), forge_id: forgeId };
    return this.submit("agent", { ...prepared, spec }, owner, origin);
  }

  /** Queues the next turn of a finished agent run: its agents resume their sessions. */
  async submitFollowUp(
    parentId: string,
    text: string,
    owner: RunOwner,
    origin: RunOrigin,
  ): Promise<RunRecord> {
    return this.submit("agent", await this.agents().prepareFollowUp(parentId, text, owner), owner, origin);
  }

  /**
   * Queues the run that publishes `parentId`'s branch, once: its id is the parent's with `-push` or
   * `-pull-request`, so a second ask (a double click, another replica) answers the first's run
   * (`created: false`). After a failed one the next gets `-2`, `-3` and so on.
   */
  async submitPublish(
    parentId: string,
    publish: "push" | "pull_request",
    owner: RunOwner,
    origin: RunOrigin,
  ): Promise<{ run: RunRecord; created: boolean }> {
    const base = `${parentId}-${publish === "push" ? "push" : "pull-request"}`;
    for (let attempt = 1; attempt <= maxPublishAttempts; attempt++) {
      const runId = attempt === 1 ? base : `${base}-${attempt}`;
      const earlier = await this.store.runs.get(runId);
      if (earlier && !failedStatuses.has(earlier.status)) return { run: earlier, created: false };
      if (earlier) continue;
      const prepared = await this.agents().preparePublish(parentId, publish);
      try {
        return { run: await this.submit("agent", prepared, owner, { ...origin, runId }), created: true };
      } catch (error) {
        const raced = await this.store.runs.get(runId);
        if (raced) return { run: raced, created: false };
        throw error;
      }
    }
    throw new RunyardError("CONFLICT", `run ${parentId} failed to publish ${maxPublishAttempts} times`, {
      hint: "Read why in the last publish run's error, fix that (the git token, the forge), then submit a new run.",
    });
  }

  private agents(): AgentRuns {
    if (!this.kinds.agent) throw new RunyardError("INVALID_INPUT", "this server does not run agent runs");
    return this.kinds.agent;
  }

  /**
   * Queues a checked run of `kind`; resolves with its record once `run.queued` is stored. A given `runId`
   * that exists already is a CONFLICT, and nothing starts.
   */
  async submit(kind: RunKind, prepared: PreparedRun, owner: RunOwner, origin: RunOrigin): Promise<RunRecord> {
    this.moduleFor(kind);
    const queued = stamp({ type: "run.queued", kind, name: prepared.name }, new Date().toISOString());
    const { record, event, json } = await this.store.runs.createWithEvent(
      {
        ...(origin.runId !== undefined ? { id: origin.runId } : {}),
        trigger: origin.trigger,
        trigger_ref: origin.ref ?? null,
        saved_workflow: origin.saved?.name ?? null,
        saved_version: origin.saved?.version ?? null,
        ...(origin.retry ? { retry_of: origin.retry.of, retry_from: origin.retry.from } : {}),
        kind,
        name: prepared.name,
        status: "queued",
        tenant_id: owner.tenantId,
        created_by: owner.tokenId,
        created_by_user:
          owner.userId !== undefined ? owner.userId : await userBehind(this.store, owner.tokenId),
        authored_by: origin.authoredBy !== undefined ? origin.authoredBy : owner.tokenId,
        spec: prepared.spec,
        vars: prepared.vars,
        replica_id: this.replica.id,
        concurrency_group: prepared.concurrency_group ?? null,
        ...(origin.parent ? { parent_run_id: origin.parent.runId, parent_step: origin.parent.step } : {}),
      },
      queued,
      this.logLimitOf(kind, []),
    );
    // Its module starts first, so what follows the run on the bus (its notify targets) sees `run.queued`.
    this.activate(record, [], { queuedStored: true });
    this.bus.publish([event], [json]);
    return record;
  }

  private moduleFor(kind: RunKind): RunKindModule {
    const module = this.kinds[kind];
    if (!module) {
      throw new RunyardError("INVALID_INPUT", `this server does not run ${kind} runs yet`);
    }
    return module;
  }

  /** The cap on a run's stored output: a bot's keeps its newest bytes, any other run its first. */
  private logLimitOf(kind: RunKind, resumed: readonly RunEvent[]): RunLogLimit {
    return kind === "bot"
      ? {
          maxBytes: this.limits.maxBotLogBytes ?? defaultMaxBotLogBytes,
          storedBytes: storedOutputBytes(resumed),
          rolling: true,
        }
      : { maxBytes: this.limits.maxRunLogBytes, storedBytes: storedOutputBytes(resumed) };
  }

  /** Starts a new run (`run.queued` first, unless `queuedStored` with it) or carries on from `resumed`. */
  private activate(record: RunRecord, resumed: RunEvent[], { queuedStored = false } = {}): LiveRun {
    const controller = new AbortController();
    const halting = new AbortController();
    const projection = new RunProjection(this.store, record);
    const run: LiveRun = {
      since: Date.now(),
      parkable:
        record.kind === "workflow" && resumed.every((e) => e.type === "run.queued" || e.type === "notice"),
      record,
      resumed,
      controller,
      signal: controller.signal,
      halting,
      halt: halting.signal,
      started: record.status === "running",
      sink: new RunSink(
        record.id,
        record.last_seq,
        this.store,
        this.bus,
        projection.apply,
        this.logLimitOf(record.kind, resumed),
        {
          id: this.replica.id,
          fenced: () =>
            this.replica.fenced(
              `run ${record.id} is carried by another replica now: its events were refused`,
            ),
          lost: () => this.engineLost(run),
        },
        projection.recordChange,
      ),
      markStarted: (runnerId) => this.markStarted(record.id, runnerId),
      done: Promise.resolve(),
    };
    this.active.set(record.id, run);
    if (resumed.length === 0 && !queuedStored)
      run.sink.emit({ type: "run.queued", kind: record.kind, name: record.name });
    run.done = this.moduleFor(record.kind)
      .start(run)
      .then(() => (run.lost ? undefined : run.sink.drain()))
      // Carried on from the store: a job its earlier engine queued may be left (see `endJobs`).
      .then(() => (resumed.length > 0 && !run.lost ? this.jobs.endJobs(record.id) : undefined))
      .catch(async (error: unknown) => {
        if (run.lost) return;
        if (storeAway(error)) {
          // It goes on from the stored events once the database is back, as after a restart.
          this.active.delete(record.id);
          this.carryOnWhenBack(record.id);
          return;
        }
        this.logger.error({ err: error, runId: record.id }, "run failed to carry on");
        await run.sink.drain().catch(() => undefined);
        // A run another replica adopted meanwhile is that replica's to end, not this one's.
        const carrier = await this.store.fleet.runReplica(record.id).catch(() => undefined);
        // Queued too: an engine that failed before its run started (waiting for its concurrency group
        // or a runner, a spec that no longer reads) has nobody else to end it.
        if (carrier === this.replica.id || carrier === null)
          await this.store.runs.patch(record.id, interruptedBy(error), { ifStatus: ["queued", "running"] });
      })
      .finally(() => {
        if (this.active.get(record.id) === run) this.active.delete(record.id);
      });
    return run;
  }

  /**
   * The run's sink failed a write for good (database away past its wait, a commit of unknown outcome):
   * what the engine believes stored may not be, so it halts and the run goes on from its stored events
   * once the database is back. The old engine makes no job more (`JobQueue.runJob`), its sink no event.
   */
  private engineLost(run: LiveRun): void {
    if (this.active.get(run.record.id) !== run) return;
    run.lost = true;
    run.halting.abort();
    this.active.delete(run.record.id);
    this.carryOnWhenBack(run.record.id);
  }

  /** Tried every `storeRetryMs` until the run goes on from its stored events, ends, or goes elsewhere. */
  private carryOnWhenBack(runId: string): void {
    if (this.awaitingStore.has(runId)) return;
    this.awaitingStore.add(runId);
    this.logger.warn({ runId }, "a run's engine lost the database; it goes on once the database is back");
    const attempt = async (): Promise<void> => {
      if (this.closed) return;
      try {
        const record = await this.store.runs.get(runId);
        const carrier = await this.store.fleet.runReplica(runId);
        this.awaitingStore.delete(runId);
        if (!record || isFinalStatus(record.status) || carrier !== this.replica.id) return;
        await this.carryOn([record], "carrying a run on: the database is back");
      } catch (error) {
        if (!storeAway(error)) {
          this.awaitingStore.delete(runId);
          this.logger.error({ err: error, runId }, "run failed to carry on");
          return;
        }
        setTimeout(() => void attempt(), storeRetryMs).unref();
      }
    };
    setTimeout(() => void attempt(), storeRetryMs).unref();
  }

  /** Parks the workflow runs that wait for a runner (ParkedRuns), from now on. */
  startParking(): void {
    this.parked.start(this.limits.parkQueuedAfterMs);
  }

  /** A job of a run carried here changed: a parked run goes on (ParkedRuns.jobChanged). */
  jobChanged(runId: string): void {
    this.parked.jobChanged(runId);
  }

  /** The parked runs' jobs read again, should a fleet message have been lost (ParkedRuns.recheck). */
  recheckParked(): Promise<void> {
    return this.parked.recheck();
  }

  /** Another replica stored events of a run carried here: its record follows them. */
  catchUp(runId: string): void {
    void this.active
      .get(runId)
      ?.sink.catchUp()
      .catch((error: unknown) => this.logger.warn({ err: error, runId }, "cannot read a run's new events"));
  }

  /** The first time a runner takes work of a queued run, the run is running. */
  markStarted(runId: string, runnerId: string): void {
    const run = this.active.get(runId);
    if (!run || run.started) return;
    run.started = true;
    run.sink.emit({ type: "run.started", name: run.record.name, runner_id: runnerId });
  }

  /**
   * Cancels a queued or running run (SIGTERM, then SIGKILL). Answers once it has ended, or after
   * `answerWithinMs` while a step traps SIGTERM: the record then says running, and `run.finished` follows.
   */
  async cancel(runId: string, answerWithinMs = 900): Promise<RunRecord> {
    if (this.parked.has(runId)) await this.parked.cancel(runId);
    const run = this.active.get(runId);
    if (!run) return this.cancelElsewhere(runId, answerWithinMs);
    run.controller.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([run.done, new Promise((resolve) => (timer = setTimeout(resolve, answerWithinMs)))]);
    clearTimeout(timer);
    const record = await this.store.runs.get(runId);
    if (!record) throw new RunyardError("NOT_FOUND", `run ${runId} does not exist`);
    return record;
  }

  /** A run carried elsewhere or to be adopted: the stored request stops it wherever; answers as `cancel`. */
  private async cancelElsewhere(runId: string, answerWithinMs: number): Promise<RunRecord> {
    if (!(await this.store.fleet.requestRunCancel(runId))) {
      const record = await this.store.runs.get(runId);
      if (!record) throw new RunyardError("NOT_FOUND", `run ${runId} does not exist`);
      throw new RunyardError("CONFLICT", `run ${runId} has already ended (${record.status})`, {
        hint: "Only queued or running runs can be canceled.",
      });
    }
    this.replica.askCancel(runId);
    const deadline = Date.now() + answerWithinMs;
    for (;;) {
      const record = await this.store.runs.get(runId);
      if (!record) throw new RunyardError("NOT_FOUND", `run ${runId} does not exist`);
      if (isFinalStatus(record.status) || Date.now() >= deadline) return record;
      await delay(Math.min(50, Math.max(1, deadline - Date.now())));
    }
  }

  /** Another replica asked to cancel a run; it is stopped if it is carried here. */
  cancelRequested(runId: string): void {
    if (this.parked.has(runId)) {
      void this.parked
        .cancel(runId)
        .then(() => this.active.get(runId)?.controller.abort())
        .catch((error: unknown) => this.logger.warn({ err: error, runId }, "cannot cancel a parked run"));
      return;
    }
    this.active.get(runId)?.controller.abort();
  }

  /**
   * After a restart: runs this replica or no live one carried go on from their stored events. Their
   * leases wait `graceMs` for the runners; then a run ends `interrupted` (RUNNER_LOST) or retries.
   */
  async recover(graceMs: number): Promise<number> {
    const runs = await this.store.fleet.adoptRuns(this.replica.id, { own: true });
    await this.jobs.holdLeases(
      runs.map((run) => run.id),
      graceMs,
    );
    await this.carryOn(runs, "resuming run after restart");
    return runs.length;
  }

  /** The leader's round: runs whose replica died go on here from their stored events. */
  async adoptOrphans(): Promise<number> {
    const runs = await this.store.fleet.adoptRuns(this.replica.id);
    await this.carryOn(runs, "adopting a run whose replica stopped");
    return runs.length;
  }

  private async carryOn(runs: readonly RunRecord[], why: string): Promise<void> {
    for (const record of runs) {
      // Ours already (adoptRuns): one that cannot go on must neither strand the rest nor stay ours idle.
      await this.carryOnOne(record, why).catch(async (error: unknown) => {
        if (storeAway(error) && !this.active.has(record.id)) {
          this.carryOnWhenBack(record.id);
          return;
        }
        this.logger.error({ err: error, runId: record.id }, "run failed to carry on");
        if (this.active.has(record.id)) return;
        await this.store.runs
          .update(record.id, interruptedBy(error), { ifStatus: ["queued", "running"] })
          .catch((cause: unknown) =>
            this.logger.error({ err: cause, runId: record.id }, "cannot end the run"),
          );
      });
    }
  }

  private async carryOnOne(record: RunRecord, why: string): Promise<void> {
    if (this.active.has(record.id)) return;
    const events = await this.allEvents(record.id);
    const finished = events.find((e) => e.type === "run.finished");
    if (finished?.type === "run.finished") {
      // It ended, but the server stopped before the record said so.
      await this.store.runs.patch(record.id, finishedPatch(finished, record.steps, record.vars));
      return;
    }
    if (!this.kinds[record.kind]) {
      await this.store.runs.markInterruptedRunning(
        { code: "INVALID_INPUT", message: `this server does not run ${record.kind} runs` },
        { ids: [record.id] },
      );
      return;
    }
    // Read before the engine starts, aborted in the same tick: one running unaborted meanwhile could find
    // its job ended by the cancel and end the run failed (CANCELED) instead of canceled.
    const canceled = await this.store.fleet.cancelRequested(record.id);
    if (this.active.has(record.id)) return;
    const run = this.activate(record, events);
    if (canceled) run.controller.abort();
    this.logger.info({ runId: record.id, events: events.length }, why);
  }

  private async allEvents(runId: string): Promise<RunEvent[]> {
    const events: RunEvent[] = [];
    for (;;) {
      const page = await this.store.events.list(runId, { after: events.at(-1)?.seq ?? 0, limit: 10_000 });
      events.push(...page);
      if (page.length < 10_000) return events;
    }
  }

  /**
   * Cancels nothing: runs stay for `recover` on the next start. Engines halt so that no timer of theirs
   * (a timeout, a wait for a retry or a concurrency group) keeps the process from exiting.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.parked.stop();
    for (const run of this.active.values()) run.halting.abort();
    for (const run of this.active.values()) await run.sink.drain();
  }

  /** Whether this replica carries the run (its engine is here, or it is parked here). */
  carries(runId: string): boolean {
    return this.active.has(runId) || this.parked.has(runId);
  }

  /** The runs this replica carries, parked ones included. */
  get activeRuns(): number {
    return this.active.size + this.parked.size;
  }

  /** The runs parked here: carried as their stored rows, no engine. */
  get parkedRuns(): number {
    return this.parked.size;
  }
}

/** A run's record once `error` ended its engine: nothing else will end it. */
function interruptedBy(error: unknown) {
  return { status: "interrupted" as const, error: toErrorInfo(error), finished_at: new Date().toISOString() };
}

/** The output bytes among a resumed run's stored events, so its log cap goes on from there. */
function storedOutputBytes(events: readonly RunEvent[]): number {
  let bytes = 0;
  for (const event of events)
    if (event.type === "step.output") bytes += Buffer.byteLength(event.data, "utf8");
  return bytes;
}
