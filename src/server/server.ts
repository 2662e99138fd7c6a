import { resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { AgentStatus } from "../agents/availability.js";
import type { BudgetOverrides } from "../core/config.js";
import {
  defaultMaxArtifactBytes,
  defaultMaxRunArtifactBytes,
  defaultMaxRunLogBytes,
} from "../core/config.js";
import type { RepoRoute } from "../core/config-file.js";
import { RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { maxRunnerMessageBytes } from "../core/protocol.js";
import { type RunnerLink, runnerLinkPair } from "../core/runner-link.js";
import { createFleetLink, createStore } from "../store/create-store.js";
import type { Store } from "../store/index.js";
import { schemaLevel } from "../store/schema-upgrade.js";
import { defaultWorkflowLimits, type WorkflowLimits } from "../workflow/yaml-limits.js";
import { triggerQuotaPrincipal } from "./acting-for.js";
import { buildApp } from "./app.js";
import { ApprovalWaits } from "./approvals/approval-waits.js";
import { runnerTokenFor } from "./auth.js";
import { BotWatch } from "./bots/bot-alerts.js";
import { BotRuns } from "./bots/bot-runs.js";
import { defaultHookRate, type HookRate } from "./bots/hook-limiter.js";
import { close as closeWaiting, defaultDatabaseWaitSeconds, openWhenReachable } from "./database-wait.js";
import type { ArtifactLimits } from "./deps.js";
import { EventBus } from "./event-bus.js";
import { BotRelay } from "./fleet/bot-relay.js";
import { defaultSweepMs, relayFleet } from "./fleet/fleet-relay.js";
import { defaultReplicaTimings, Replica, type ReplicaTimings, replicaIdFor } from "./fleet/replica.js";
import { finishMigrations } from "./fleet/schema-finish.js";
import { SchemaWatch } from "./fleet/schema-watch.js";
import { ForgeReporter } from "./forges/forge-reporter.js";
import { prepareHome, protectDatabase, secretKeyFor } from "./home.js";
import { defaultIdempotencyKeyHours } from "./idempotency.js";
import { LoginLimiter } from "./identity/login-limiter.js";
import { Revocations } from "./identity/revocations.js";
import { JobQueue } from "./job-queue.js";
import { Notifier } from "./notifier.js";
import { OutboundPolicy } from "./outbound/outbound-policy.js";
import { type BotDefaults, defaultBotSettings, type QuotaSettings, Quotas } from "./quotas.js";
import { type HubTimings, RunnerHub } from "./runner-hub.js";
import { AgentRuns } from "./runs/agent-runs.js";
import { ConcurrencyGroups } from "./runs/concurrency-groups.js";
import { RunService } from "./runs/run-service.js";
import { SavedWorkflows } from "./runs/saved-workflows.js";
import { WorkflowCalls } from "./runs/workflow-calls.js";
import { parseOnThisThread, type WorkflowParser } from "./runs/workflow-parser.js";
import { WorkflowRuns } from "./runs/workflow-runs.js";
import { Scheduler } from "./schedules/scheduler.js";
import { SessionTokens } from "./session-tokens.js";
import { SpendBudgets } from "./spend-budgets.js";
import { type RunTracing, startTracing } from "./tracing/tracing.js";
import type { TracingSettings } from "./tracing/tracing-settings.js";

/** How many days audit entries are kept unless `audit.retention_days` says otherwise. */
export const defaultAuditRetentionDays = 90;
/** How long webhook delivery ids and schedule ticks are kept (each schedule's newest tick stays). */
const bookkeepingRetentionMs = 30 * 86_400_000;
/** How often a schedule may fire at most, unless RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS says otherwise. */
export const defaultScheduleMinIntervalSeconds = 60;
/** A tenant's scheduled runs an hour at most, unless RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR says otherwise. */
export const defaultScheduleMaxRunsPerHour = 600;

export interface ServerOptions {
  host: string;
  port: number;
  /** What the server waits for before it takes work; `/health` answers 503 with it until undefined. */
  waitingFor?: () => string | undefined;
  /** Folder for the SQLite file and artifacts; undefined means an in-memory store (nothing persists). */
  home: string | undefined;
  /** Admin token to ensure exists (RUNYARD_ADMIN_TOKEN); otherwise one is made on first start. */
  adminToken?: string;
  /** A PostgreSQL URL (RUNYARD_DATABASE_URL): the store lives there instead of `<home>`'s SQLite file. */
  databaseUrl?: string;
  /** Key that encrypts secrets at rest (RUNYARD_SECRET_KEY); otherwise `<home>/secret.key`. */
  secretKey?: string;
  timings: HubTimings;
  /** How long runs left running wait for their runners after a restart. */
  reconnectGraceMs: number;
  /** Output bytes stored per run; 0 means no cap. Default 100 MiB. */
  maxRunLogBytes?: number;
  /** A bot's stored output, its newest bytes kept (RUNYARD_MAX_BOT_LOG_BYTES); default 8 MiB. */
  maxBotLogBytes?: number;
  /** How often the leader checks bots' alerts (`RUNYARD_BOT_ALERT_CHECK_SECS`; 5 s). */
  botAlertCheckMs?: number;
  /** How many webhook requests a bot takes, across replicas; default 20 in two seconds. */
  botHookRate?: HookRate;
  /** A workflow run waiting this long for a runner is kept as its stored rows alone (default 100 ms). */
  parkQueuedAfterMs?: number;
  /** How large a workflow may be (RUNYARD_MAX_WORKFLOW_BYTES) and how many aliases it may use. */
  workflowLimits?: Partial<WorkflowLimits>;
  /** How submitted and validated workflows are parsed; default: on the server's own thread. */
  parseWorkflow?: WorkflowParser;
  /** How big one artifact (default 16 MiB) and one run's artifacts (default 64 MiB) may be. */
  artifactLimits?: Partial<ArtifactLimits>;
  /** How long a login session lasts (RUNYARD_SESSION_TTL_MS); default 12 hours. */
  sessionTtlMs?: number;
  /** Exact origins whose browser scripts may call the API (RUNYARD_CORS_ORIGINS); default none. */
  corsOrigins?: readonly string[];
  /** This replica's heartbeat and how long the fleet waits before adopting a silent one's runs. */
  replicaTimings?: ReplicaTimings;
  /** How often this replica makes up for lost fleet messages (RUNYARD_REPLICA_SWEEP_MS); default 2000. */
  replicaSweepMs?: number;
  /** Audit entries older than this many days are deleted by the fleet's leader; default 90. */
  auditRetentionDays?: number;
  /** Creating requests' `Idempotency-Key`s are kept this many hours (RUNYARD_IDEMPOTENCY_KEY_HOURS); default 24. */
  idempotencyKeyHours?: number;
  /** A schedule may fire at most once in this many seconds (RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS, default 60). */
  scheduleMinIntervalSeconds?: number;
  /** A tenant's schedules start at most this many runs an hour (RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR, default 600). */
  scheduleMaxRunsPerHour?: number;
  /** A `catch_up: none` tick found later than this after its time is missed (RUNYARD_SCHEDULE_ON_TIME_MS, default 5000). */
  scheduleOnTimeMs?: number;
  /** Run limits per tenant and user (config `quotas:`); default: none. */
  quotas?: QuotaSettings;
  /** Agents' spend budgets per tenant and user (config `budgets:`); budgets set through the API win. */
  budgets?: BudgetOverrides;
  /** Bots' lifetime, container limits, network and upload size; default: the avtomatika-bot's. */
  bots?: Partial<BotDefaults>;
  /** Agents on this machine for `GET /health/agents`; default: none known. */
  agentsHealth?: () => Promise<AgentStatus[]>;
  /** Repo to runner-group routing for agent runs (config file `repos:`, the ADOS runner's routing). */
  repoRoutes?: RepoRoute[];
  /**
   * Internal destinations (config `direct_hosts:` / `notify_hosts:` / `mcp_hosts:`) members' direct hosts,
   * notify URLs and agent tasks' MCP server URLs may name; default: none, only public addresses.
   */
  outbound?: { directHosts: readonly string[]; notifyHosts: readonly string[]; mcpHosts?: readonly string[] };
  /** The roots under which a confined run's agent tasks may name a cwd (core/work-folders.ts); default: none. */
  agentCwdRoots?: readonly string[];
  /** The roots under which a confined run's workflow steps may name a cwd (core/work-folders.ts); default: none. */
  stepCwdRoots?: readonly string[];
  /**
   * On PostgreSQL, how long a start waits for a down or recovering database (RUNYARD_DATABASE_WAIT);
   * default 300 s. 0: it does not wait.
   */
  databaseWaitSeconds?: number;
  /** The fleet presumed this replica dead and adopted its runs; default: the server closes. */
  onFenced?: () => void;
  /** OpenTelemetry traces of runs (tracing-settings.ts reads them from OTEL_*); absent: off, no SDK loaded. */
  tracing?: TracingSettings;
  logger: Logger;
  version: string;
  warn: (message: string) => void;
}

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  store: Store;
  /** Stored events as they land, per run (what SSE followers see). */
  bus: EventBus;
  /** Runs' traces (options.tracing); absent: tracing is off. */
  tracing: RunTracing | undefined;
  hub: RunnerHub;
  runs: RunService;
  /** This server among the replicas sharing its database. */
  replica: Replica;
  /** Set when this start created the admin token: shown once, never stored. */
  newAdminToken: string | undefined;
  /** Hands out no more work, and waits up to `graceMs` for the jobs runners hold to finish. */
  drain(graceMs: number): Promise<void>;
  /**
   * Links a runner in this process (`runyard up`'s own) to the hub without a socket: its token is
   * checked as the runner socket checks it (UNAUTHORIZED, FORBIDDEN; STORE_TOO_NEW or
   * STORE_UNAVAILABLE to try again later), and the hub has its session as it has a socket's.
   */
  linkRunner(secret: string): Promise<RunnerLink>;
  close(): Promise<void>;
}

/** Starts the control plane: store, API, runner hub; carries on runs a previous process left. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { logger } = options;
  const { databaseUrl, home } = options;
  if (databaseUrl && !home && options.secretKey === undefined) {
    // Without a home there is no secret.key file; a shared database must not get plain secrets.
    throw new RunyardError(
      "USAGE",
      "a PostgreSQL store needs a secret key: set RUNYARD_SECRET_KEY or give --home",
      {
        hint: "Set RUNYARD_SECRET_KEY (e.g. `openssl rand -base64 32`), or drop --memory so <home>/secret.key is used.",
      },
    );
  }
  // The home folder holds the secret key file and artifacts on PostgreSQL too.
  const sqlitePath = home ? prepareHome(home).databasePath : undefined;
  const replicaId = replicaIdFor(home);
  const openStore = () =>
    createStore({
      databaseUrl,
      sqlitePath,
      secretKey: home ? secretKeyFor(home, options.secretKey) : options.secretKey,
      logger,
      warn: options.warn,
      // A start on PostgreSQL watches older replicas' heartbeats this long before migrating past them.
      olderReplicaWaitMs: (options.replicaTimings ?? defaultReplicaTimings).leaseMs,
    });
  // A replica on PostgreSQL waits for a database that is down or still recovering; SQLite opens
  // a file, and anything wrong with it is for the operator to see at once.
  const { store, listening } = databaseUrl
    ? await openWhenReachable(openStore, {
        waitMs: (options.databaseWaitSeconds ?? defaultDatabaseWaitSeconds) * 1000,
        host: options.host,
        port: options.port,
        replicaId,
        version: options.version,
        logger,
      })
    : { store: await openStore(), listening: undefined };
  if (home && !databaseUrl) protectDatabase(home);

  const bus = new EventBus();
  const tracing = options.tracing ? await startTracing(options.tracing, { bus, store, logger }) : undefined;
  let url: string | null = null;
  const replica = new Replica(
    replicaId,
    store,
    createFleetLink({ databaseUrl, logger, replicaId }),
    options.replicaTimings ?? defaultReplicaTimings,
    logger,
    () => (options.onFenced ?? (() => void close()))(),
    () => ({ url, version: options.version, schema_level: schemaLevel }),
  );
  // The queue and the hub need each other: the queue reaches runners through the hubs.
  const links = {
    dispatch: () => {
      hub.dispatch();
      replica.tell({ type: "jobs" });
    },
    cancel: async (jobId: string, runnerId: string) => {
      if (hub.cancel(jobId, runnerId)) return true;
      const runner = await store.runners.get(runnerId);
      if (runner?.status !== "online" || !runner.replica_id || runner.replica_id === replica.id) return false;
      replica.tell({ type: "cancel-job", job_id: jobId, runner_id: runnerId });
      return true;
    },
    drop: (jobId: string, runnerId: string) => hub.drop(jobId, runnerId),
    jobChanged: (runId: string, jobId: string) => replica.tell({ type: "job", run_id: runId, job_id: jobId }),
  };
  const queue = new JobQueue({
    store,
    bus,
    links,
    logger,
    replicaId: replica.id,
    leaseMs: options.timings.leaseMs,
    onAccepted: (runId, runnerId) => runs.markStarted(runId, runnerId),
  });
  const notifyHosts = new OutboundPolicy("notify_hosts", options.outbound?.notifyHosts ?? []);
  const notifier = new Notifier(bus, store.runs, logger, { allowed: notifyHosts });
  const directHosts = new OutboundPolicy("direct_hosts", options.outbound?.directHosts ?? []);
  const workflowLimits = { ...defaultWorkflowLimits, ...options.workflowLimits };
  const parseWorkflow = options.parseWorkflow ?? parseOnThisThread;
  const parsing = { limits: workflowLimits, parse: parseWorkflow };
  // No run works in the server's home (its secret key, its database), a platform admin's neither.
  const serverFolders = home ? [resolve(home)] : [];
  const approvals = new ApprovalWaits(store, logger, (runId, step) =>
    replica.tell({ type: "approval", run_id: runId, step }),
  );
  // Cancels through the run service, made a few lines later (cancel_in_progress).
  const groups = new ConcurrencyGroups(store, (runId): Promise<unknown> => runs.cancel(runId), logger);
  const quotas = new Quotas(store, options.quotas, { ...defaultBotSettings, ...options.bots });
  const spendBudgets = new SpendBudgets(store, options.budgets ?? {});
  const workflows = new WorkflowRuns(
    store,
    queue,
    notifier,
    directHosts,
    logger,
    parsing,
    approvals,
    groups,
    { roots: options.stepCwdRoots ?? [], own: serverFolders },
    // Submits and cancels through the run service, made a few lines later.
    new WorkflowCalls(store, parsing, {
      // A child counts against the quotas of its tenant and its calling run's user, as a submit does;
      // past one, the call step fails with the quota's error and no child is stored.
      submit: async (spec, owner, origin) => {
        await quotas.checkSubmit(
          await triggerQuotaPrincipal(
            store,
            owner.tenantId,
            owner.userId !== undefined ? owner.userId : owner.tokenId,
          ),
        );
        return runs.submitWorkflow(spec, owner, origin);
      },
      cancel: (runId) => runs.cancel(runId),
    }),
    spendBudgets,
    tracing,
  );
  const agents = new AgentRuns(
    store,
    queue,
    options.repoRoutes ?? [],
    { roots: options.agentCwdRoots ?? [], own: serverFolders },
    spendBudgets,
    new OutboundPolicy("mcp_hosts", options.outbound?.mcpHosts ?? []),
    tracing,
  );
  const bots = new BotRuns(store, queue, { ...defaultBotSettings, ...options.bots });
  const runs: RunService = new RunService(
    store,
    bus,
    { workflow: workflows, agent: agents, bot: bots },
    queue,
    logger,
    {
      maxRunLogBytes: options.maxRunLogBytes ?? defaultMaxRunLogBytes,
      ...(options.maxBotLogBytes !== undefined ? { maxBotLogBytes: options.maxBotLogBytes } : {}),
      ...(options.parkQueuedAfterMs !== undefined ? { parkQueuedAfterMs: options.parkQueuedAfterMs } : {}),
    },
    {
      id: replica.id,
      askCancel: (runId) => replica.tell({ type: "cancel-run", run_id: runId }),
      fenced: (why) => replica.fence(why),
    },
  );
  const savedWorkflows = new SavedWorkflows(store, runs, {
    ...parsing,
    minScheduleIntervalS: options.scheduleMinIntervalSeconds ?? defaultScheduleMinIntervalSeconds,
    maxScheduledRunsPerHour: options.scheduleMaxRunsPerHour ?? defaultScheduleMaxRunsPerHour,
  });
  const hub: RunnerHub = new RunnerHub(store, queue, options.timings, logger, {
    id: replica.id,
    installId: await store.serverKeys.installId(),
    isLeader: () => replica.isLeader,
    alone: !databaseUrl,
  });
  const revocations = new Revocations({
    store,
    hub,
    lost: (job, why) => queue.lost(job, why),
    tell: (revoked) => replica.tell({ type: "revoked", ...revoked }),
    logger,
  });
  const stopRelay = relayFleet({
    replica,
    store,
    bus,
    queue,
    hub,
    runs,
    approvals,
    revocations,
    logger,
    shared: Boolean(databaseUrl),
    sweepMs: options.replicaSweepMs ?? defaultSweepMs,
  });
  const scheduler = new Scheduler({
    store,
    workflows: savedWorkflows,
    runs,
    logger,
    isLeader: () => replica.isLeader,
    maxRunsPerHour: options.scheduleMaxRunsPerHour ?? defaultScheduleMaxRunsPerHour,
    onTimeMs: options.scheduleOnTimeMs,
    // A tick's run is its schedule's owner's, held to their run quotas and their tenant's.
    admitRun: async (tenantId, ownerId) =>
      quotas.checkSubmit(await triggerQuotaPrincipal(store, tenantId, ownerId)),
  });
  // Bots' history is downsampled and their alerts checked by the leader.
  const botWatch = new BotWatch(store, notifyHosts, logger, {
    isLeader: () => replica.isLeader,
    ...(options.botAlertCheckMs !== undefined ? { checkMs: options.botAlertCheckMs } : {}),
  });
  let auditPruned = 0;
  const auditRetentionMs = (options.auditRetentionDays ?? defaultAuditRetentionDays) * 86_400_000;
  replica.whenLeading(() => scheduler.round());
  replica.whenLeading(async () => {
    await runs.adoptOrphans();
    // At the first round a replica leads, then hourly: the log is read by the day, not the second.
    if (Date.now() - auditPruned > 3_600_000) {
      auditPruned = Date.now();
      const removed = await store.audit.prune(new Date(Date.now() - auditRetentionMs).toISOString());
      if (removed > 0)
        logger.info({ removed, retentionDays: auditRetentionMs / 86_400_000 }, "audit entries pruned");
      // A webhook's delivery ids and a schedule's ticks: kept a month, each schedule's last tick always.
      const monthAgo = new Date(Date.now() - bookkeepingRetentionMs).toISOString();
      const deliveries = await store.hooks.pruneDeliveries(monthAgo);
      const ticks = await store.schedules.pruneTicks(monthAgo);
      if (deliveries + ticks > 0)
        logger.info({ deliveries, ticks }, "old webhook deliveries and schedule ticks pruned");
      const keys = await store.idempotencyKeys.prune();
      if (keys > 0) logger.info({ keys }, "expired idempotency keys pruned");
    }
  });

  await replica.join(!databaseUrl);
  // On PostgreSQL a newer runyard may migrate the database while this replica runs.
  const schemaWatch = new SchemaWatch(
    store.schema,
    (options.replicaTimings ?? defaultReplicaTimings).heartbeatMs,
    logger,
    () => void stopWork(),
  );
  const app = buildApp({
    store,
    bus,
    ...(tracing ? { tracing } : {}),
    runs,
    approvals,
    savedWorkflows,
    scheduler,
    hub,
    botRelay: new BotRelay(replica.id, hub, store, logger),
    replica,
    sessions: await SessionTokens.open(store.serverKeys, options.sessionTtlMs),
    revocations,
    loginLimiter: new LoginLimiter(),
    quotas,
    budgets: spendBudgets,
    idempotency: {
      keepMs: (options.idempotencyKeyHours ?? defaultIdempotencyKeyHours) * 3_600_000,
    },
    bots,
    botUploadBytes: options.bots?.maxUploadBytes ?? defaultBotSettings.maxUploadBytes,
    botHookRate: options.botHookRate ?? defaultHookRate,
    botWatch,
    corsOrigins: options.corsOrigins ?? [],
    workflowLimits,
    parseWorkflow,
    agentsHealth: options.agentsHealth ?? (async () => []),
    artifactLimits: {
      maxArtifactBytes: options.artifactLimits?.maxArtifactBytes ?? defaultMaxArtifactBytes,
      maxRunArtifactBytes: options.artifactLimits?.maxRunArtifactBytes ?? defaultMaxRunArtifactBytes,
    },
    logger,
    version: options.version,
    ...(options.waitingFor ? { waitingFor: options.waitingFor } : {}),
    storeTooNew: () => schemaWatch.refusal,
  });

  const resumed = await runs.recover(options.reconnectGraceMs);
  if (resumed > 0) logger.info({ runs: resumed }, "carrying on runs left by the previous start");
  // The port the replica answered on while it waited for its database passes to the server.
  const waitedOn = listening?.address();
  await closeWaiting(listening);
  await app.listen({
    host: options.host,
    port: typeof waitedOn === "object" && waitedOn ? waitedOn.port : options.port,
  });
  // Made only once the server listens: a first start that fails (a busy port) must not make a
  // token nobody was shown, which every later start would then refuse to make again.
  const newAdminToken = await ensureAdminToken(store, options.adminToken);
  hub.start(bus, options.replicaSweepMs ?? defaultSweepMs);
  replica.start();
  // On SQLite the store's opening finished every migration, and no other runyard reaches the file.
  if (databaseUrl) {
    replica.whenLeading(() => finishMigrations(store, logger));
    schemaWatch.start();
  }
  runs.startParking();
  botWatch.start();
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  url = `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
  logger.info({ url, replica: replica.id, leader: replica.isLeader }, "server listening");
  // Tells code forges how the runs their issues started ended (pull requests, comments).
  const forgeReporter = new ForgeReporter(store, bus, logger, url);

  // Everything that writes: stopped at close, and by a replica the database became too new for,
  // which keeps answering reads (its row goes, so the other replicas adopt its runs at once).
  // `then` runs once the runner sockets are closed (close's HTTP server).
  let stopping: Promise<void> | undefined;
  const stopWork = (then?: () => Promise<void>): Promise<void> => {
    if (stopping) return stopping.then(() => then?.());
    stopping = (async () => {
      // Requests waiting for a run's events answer now: the HTTP server's close waits for them.
      bus.stop();
      schemaWatch.stop();
      stopRelay();
      forgeReporter.close();
      await scheduler.stop();
      await botWatch.stop();
      await hub.close();
      await then?.();
      // Before the store closes: a waiting approval step would read it again and again.
      approvals.close();
      await runs.close();
      await replica.stop(true);
    })();
    return stopping;
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await stopWork(() => app.close());
      // Sends the spans still held; a collector away costs at most the exporter's timeout.
      await tracing?.close();
      await store.close();
      await parseWorkflow.close?.();
    })();
    return closing;
  };

  return {
    url,
    app,
    store,
    bus,
    tracing,
    hub,
    runs,
    replica,
    newAdminToken,
    drain: (graceMs) => hub.drain(graceMs),
    linkRunner: async (secret) => {
      const refused = schemaWatch.refusal;
      if (refused) throw refused;
      const token = await runnerTokenFor(store, secret);
      const link = runnerLinkPair(maxRunnerMessageBytes);
      hub.accept(link.server, token);
      return link.runner;
    },
    close,
  };
}

/** First start: make the admin token (or take RUNYARD_ADMIN_TOKEN); only its hash is stored. */
async function ensureAdminToken(store: Store, given: string | undefined): Promise<string | undefined> {
  if (given) {
    if (!(await store.tokens.find(given))) {
      // Replicas starting together may both make it; one insert wins, which is all that matters.
      await store.tokens.create({ kind: "admin", name: "admin", secret: given }).catch((error: unknown) => {
        if (!(error instanceof RunyardError && error.code === "CONFLICT")) throw error;
      });
    }
    return undefined;
  }
  if ((await store.tokens.count("admin")) > 0) return undefined;
  const { secret } = await store.tokens.create({ kind: "admin", name: "admin" });
  return secret;
}
