import { hostname } from "node:os";
import type { Config } from "../core/config.js";
import { resolveHome } from "../core/config.js";
import { createLogger } from "../core/logger.js";
import { type RunningServer, startServer } from "../server/server.js";
import type { CliContext } from "./context.js";
import { localRunnerDaemon } from "./runner.js";
import { version } from "./version.js";

export interface ServerFlags {
  host?: string;
  port?: string;
  home?: string;
  memory?: boolean;
}

async function start(config: Config, ctx: CliContext, flags: ServerFlags): Promise<RunningServer> {
  const logger = createLogger({ level: config.logLevel, daemon: true });
  const server = await startServer({
    host: config.host,
    port: config.port,
    home: flags.memory ? undefined : resolveHome(config, ctx.cwd),
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    timings: { heartbeatMs: config.heartbeatMs, leaseMs: config.leaseMs },
    reconnectGraceMs: config.reconnectGraceMs,
    maxRunLogBytes: config.maxRunLogBytes,
    logger,
    version,
    warn: (message) => ctx.stderr.write(`warning: ${message}\n`),
  });
  ctx.stdout.write(`runyard ${version} listening on ${server.url}\n`);
  if (server.newAdminToken) {
    ctx.stdout.write(
      `admin token (shown once; only its hash is stored):\n  export RUNYARD_TOKEN=${server.newAdminToken}\n`,
    );
  } else if (!config.adminToken) {
    ctx.stdout.write("admin token: made on first start (set RUNYARD_ADMIN_TOKEN to choose one)\n");
  }
  if (!config.host.startsWith("127.") && config.host !== "localhost" && config.host !== "::1") {
    ctx.stderr.write(`warning: the API is reachable from other machines on ${config.host}\n`);
  }
  return server;
}

function untilInterrupted(ctx: CliContext): Promise<void> {
  return new Promise((resolve) => {
    const stop = ctx.onInterrupt(() => {
      stop();
      resolve();
    });
  });
}

/** `runyard server`: the control plane alone; runners join with `runyard runner`. */
export async function serverCommand(flags: ServerFlags, ctx: CliContext): Promise<number> {
  const server = await start(ctx.config, ctx, flags);
  await untilInterrupted(ctx);
  ctx.stdout.write("stopping; running runs go on after the next start\n");
  await server.close();
  return 0;
}

/** `runyard up`: server, one local runner and the API in one process, SQLite under ./.runyard. */
export async function upCommand(flags: ServerFlags, ctx: CliContext): Promise<number> {
  const config = ctx.config;
  const server = await start(config, ctx, flags);
  // The local runner gets a fresh runner token each start; earlier ones are revoked.
  for (const token of await server.store.listTokens("runner")) {
    if (token.name === "local runner (runyard up)") await server.store.revokeToken(token.id);
  }
  const { secret } = await server.store.createToken({ kind: "runner", name: "local runner (runyard up)" });
  const logger = createLogger({ level: config.logLevel, daemon: true });
  const runner = localRunnerDaemon(config, ctx.env, {
    serverUrl: server.url,
    token: secret,
    id: config.runnerId ?? `${config.hostname || hostname()}-local`,
    logger: logger.child({ component: "runner" }),
  });
  await runner.start();
  ctx.stdout.write(
    `local runner connected (group ${config.group}, capacity ${config.capacity})\ntry: runyard run examples/simple.yaml --server ${server.url}\n`,
  );
  await untilInterrupted(ctx);
  ctx.stdout.write("stopping\n");
  await runner.stop();
  await server.close();
  return 0;
}
