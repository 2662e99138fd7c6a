import { mkdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { agentStatus } from "../agents/availability.js";
import { agentNames } from "../agents/registry.js";
import type { Config } from "../core/config.js";
import { resolveHome } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import { createLogger, type Logger } from "../core/logger.js";
import { acquirePidLock } from "../core/pid-lock.js";
import { version } from "../core/version.js";
import { probeSandbox } from "../exec/sandbox/sandbox.js";
import { parseOnWorkerThread } from "../server/runs/workflow-parser.js";
import { type RunningServer, startServer } from "../server/server.js";
import { tracingSettings } from "../server/tracing/tracing-settings.js";
import { connectionLost } from "../store/connection-loss.js";
import { redactDatabaseUrl } from "../store/postgres.js";
import { type CliContext, exitCodeForSignal, untilInterrupted } from "./context.js";
import { runnerIdFor } from "./runner-id.js";

export interface ServerFlags {
  host?: string;
  port?: string;
  home?: string;
  memory?: boolean;
}

async function start(
  config: Config,
  ctx: CliContext,
  flags: ServerFlags,
  waitingFor?: () => string | undefined,
): Promise<RunningServer> {
  const logger = createLogger({ level: config.logLevel, daemon: true });
  keepOnLosingTheDatabase(logger);
  const tracing = tracingSettings(ctx.env);
  const server = await startServer({
    ...(tracing ? { tracing } : {}),
    host: config.host,
    port: config.port,
    ...(waitingFor ? { waitingFor } : {}),
    home: flags.memory ? undefined : resolveHome(config, ctx.cwd),
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    ...(config.secretKey ? { secretKey: config.secretKey } : {}),
    ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
    databaseWaitSeconds: config.databaseWaitSeconds,
    timings: { heartbeatMs: config.heartbeatMs, leaseMs: config.leaseMs },
    reconnectGraceMs: config.reconnectGraceMs,
    sessionTtlMs: config.sessionTtlMs,
    corsOrigins: config.corsOrigins,
    replicaTimings: { heartbeatMs: config.replicaHeartbeatMs, leaseMs: config.replicaLeaseMs },
    replicaSweepMs: config.replicaSweepMs,
    onFenced: () => {
      ctx.stderr.write(
        "error: the other replicas presumed this server dead (no heartbeat for RUNYARD_REPLICA_LEASE_MS) and took over its runs; exiting\n",
      );
      process.exit(1);
    },
    maxRunLogBytes: config.maxRunLogBytes,
    workflowLimits: { maxBytes: config.maxWorkflowBytes },
    parseWorkflow: parseOnWorkerThread(config.parseBudgetMs),
    maxBotLogBytes: config.maxBotLogBytes,
    botAlertCheckMs: config.botAlertCheckSecs * 1000,
    botHookRate: { burst: config.botHookBurst, windowSecs: config.botHookWindowSecs },
    auditRetentionDays: config.auditRetentionDays,
    idempotencyKeyHours: config.idempotencyKeyHours,
    scheduleMinIntervalSeconds: config.scheduleMinIntervalSeconds,
    scheduleMaxRunsPerHour: config.scheduleMaxRunsPerHour,
    scheduleOnTimeMs: config.scheduleOnTimeMs,
    repoRoutes: config.repos,
    outbound: {
      directHosts: config.directHosts,
      notifyHosts: config.notifyHosts,
      mcpHosts: config.mcpHosts,
    },
    agentCwdRoots: config.agentCwdRoots,
    stepCwdRoots: config.stepCwdRoots,
    agentsHealth: () => agentsHealth(join(resolveHome(config, ctx.cwd), "agents"), ctx.env),
    artifactLimits: {
      maxArtifactBytes: config.maxArtifactBytes,
      maxRunArtifactBytes: config.maxRunArtifactBytes,
    },
    bots: {
      lifetimeSecs: config.botLifetimeSecs,
      memoryMb: config.botMemoryMb,
      cpus: config.botCpus,
      pids: config.botPids,
      network: config.botNetwork,
      maxUploadBytes: config.maxBotUploadBytes,
    },
    quotas: {
      defaultMaxConcurrentRuns: config.defaultMaxConcurrentRuns,
      defaultMaxQueuedRuns: config.defaultMaxQueuedRuns,
      maxBotsPerUser: config.maxBotsPerUser,
      quotas: config.quotas,
    },
    budgets: config.budgets,
    logger,
    version,
    warn: (message) => ctx.stderr.write(`warning: ${message}\n`),
  }).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    throw new RunyardError(
      "ADDRESS_IN_USE",
      `port ${config.port} on ${config.host} is already in use (another \`runyard up\` or \`runyard server\`?)`,
      { cause: error },
    );
  });
  ctx.stdout.write(`runyard ${version} listening on ${server.url}\n`);
  if (config.databaseUrl) {
    ctx.stdout.write(
      `replica ${server.replica.id} on PostgreSQL (${redactDatabaseUrl(config.databaseUrl)})${server.replica.isLeader ? ", leading the fleet" : ""}\n`,
    );
  }
  if (server.newAdminToken) {
    ctx.stdout.write(
      `admin token (shown once; only its hash is stored):\n  export RUNYARD_TOKEN=${server.newAdminToken}\n`,
    );
  } else if (!config.adminToken) {
    const recover = flags.memory
      ? "set RUNYARD_ADMIN_TOKEN to choose one"
      : `lost it? stop the server and run \`runyard token create --admin --home ${resolveHome(config, ctx.cwd)}\``;
    ctx.stdout.write(`admin token: made on first start and shown then (${recover})\n`);
  }
  if (!config.host.startsWith("127.") && config.host !== "localhost" && config.host !== "::1") {
    ctx.stderr.write(`warning: the API is reachable from other machines on ${config.host}\n`);
  }
  return server;
}

/**
 * The last net of "no replica ends on a database error": an unhandled rejection from the database going
 * away (a restart, a failover) is logged; any other still ends the process, as Node does by default.
 */
function keepOnLosingTheDatabase(logger: Logger): void {
  if (process.listenerCount("unhandledRejection") > 0) return;
  process.on("unhandledRejection", (reason) => {
    const lost =
      (reason instanceof RunyardError && reason.code === "STORE_UNAVAILABLE") || connectionLost(reason);
    if (!lost) throw reason;
    logger.warn({ err: reason }, "a background task lost the database; it runs again on its next turn");
  });
}

/** Claims the home for one server (a second would share its SQLite and runner state); in memory, nothing. */
function claimHome(config: Config, ctx: CliContext, flags: ServerFlags): () => void {
  if (flags.memory) return () => {};
  const home = resolveHome(config, ctx.cwd);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  return acquirePidLock(join(home, "server.lock"), `the home folder ${home}`);
}

/** `runyard server`: the control plane alone; runners join with `runyard runner`. */
export async function serverCommand(flags: ServerFlags, ctx: CliContext): Promise<number> {
  const release = claimHome(ctx.config, ctx, flags);
  try {
    const server = await start(ctx.config, ctx, flags);
    const signal = await untilInterrupted(ctx);
    const grace = ctx.config.shutdownGraceMs;
    ctx.stdout.write(
      `stopping: no new work is handed out; running steps get up to ${grace / 1000} s to finish; runs go on after the next start\n`,
    );
    await server.drain(grace);
    await server.close();
    return exitCodeForSignal(signal);
  } finally {
    release();
  }
}

/** `runyard up`: server, one local runner and the API in one process, SQLite under ./.runyard. */
export async function upCommand(flags: ServerFlags, ctx: CliContext): Promise<number> {
  const release = claimHome(ctx.config, ctx, flags);
  try {
    return await up(flags, ctx);
  } finally {
    release();
  }
}

async function up(flags: ServerFlags, ctx: CliContext): Promise<number> {
  const config = ctx.config;
  // /health answers 503 until the local runner connects, so a script waiting for health never submits early.
  let waiting: string | undefined = "the local runner to connect";
  const server = await start(config, ctx, flags, () => waiting);
  // A fresh runner token each start, earlier ones revoked. The id goes to the new token first: an id whose
  // token is revoked is free for any runner token, and a tenant's runner taking it would end this `up`.
  const earlier = await server.store.tokens.list("runner");
  const { record: fresh, secret } = await server.store.tokens.create({
    kind: "runner",
    name: "local runner (runyard up)",
  });
  const localId = runnerIdFor(config, resolveHome(config, ctx.cwd), true);
  await server.store.runners.handOver(localId, fresh.id);
  for (const token of earlier) {
    if (token.name === "local runner (runyard up)") await server.store.tokens.revoke(token.id);
  }
  const logger = createLogger({ level: config.logLevel, daemon: true });
  // Only `up` runs steps: `runyard server` never loads the runner, Docker's client and what it brings.
  const { localRunnerDaemon } = await import("../runner/assembly/local-runner.js");
  // A local runner that cannot start (settings, cluster, token refused) ends `up` with its error, else the
  // server would answer 503 forever; one still connecting is waited for.
  const runner = await localRunnerDaemon(config, ctx.env, {
    serverUrls: [server.url],
    token: secret,
    // In this process: linked to the hub without a loopback WebSocket, its frames and wakeups.
    link: (token) => server.linkRunner(token),
    // One of its own per home: `up`s of other homes on one machine share no containers.
    id: localId,
    logger: logger.child({ component: "runner" }),
    home: resolveHome(config, ctx.cwd),
    // One machine, yet a step must not reach the server's home or env; shared with tenants iff it sandboxes.
    shared: "if-isolated",
    sandbox: { always: true, hide: [resolveHome(config, ctx.cwd)] },
  }).catch(async (error: unknown) => {
    await server.close();
    throw error;
  });
  // Tenants' runs only when it sandboxes them; else it says so, lest tenants wonder why their runs wait.
  if (runner.isolation === "none") {
    const probe = await probeSandbox();
    const why =
      config.sandbox === "off"
        ? "RUNYARD_SANDBOX is off (hint: unset it)"
        : probe.isolation === "none"
          ? `${probe.problem} (hint: ${probe.hint})`
          : "its steps cannot be sandboxed (see the log)";
    ctx.stdout.write(
      `the local runner takes runs outside any tenant only; tenants' runs wait for their own runners, because ${why}\n`,
    );
  }
  await runner.daemon.start().catch(async (error: unknown) => {
    await runner.stop(0);
    await server.close();
    throw error;
  });
  waiting = undefined;
  // The example shipped with the package, by a path that works from whatever folder `up` runs in.
  const shipped = fileURLToPath(new URL("../../examples/simple.yaml", import.meta.url));
  const example = relative(ctx.cwd, shipped).startsWith("..") ? shipped : relative(ctx.cwd, shipped);
  ctx.stdout.write(
    `local runner connected (group ${config.group}, capacity ${config.capacity})\ntry: runyard run ${example} --server ${server.url}\n`,
  );
  const signal = await untilInterrupted(ctx);
  const running = runner.daemon.runningJobs;
  const stopping = runner.stop(config.shutdownGraceMs);
  ctx.stdout.write(
    running > 0
      ? `stopping: ${running} running job(s) get up to ${config.shutdownGraceMs / 1000} s to finish\n`
      : "stopping\n",
  );
  await stopping;
  await server.close();
  return exitCodeForSignal(signal);
}

/** Every agent's availability on this machine, for `GET /health/agents`: never a credential. */
function agentsHealth(agentsHome: string, env: Record<string, string | undefined>) {
  return Promise.all(agentNames.map((name) => agentStatus(name, { agentsHome, env })));
}
