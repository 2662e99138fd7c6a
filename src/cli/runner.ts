import { mkdirSync } from "node:fs";
import type { Config } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { createLogger, type Logger } from "../core/logger.js";
import { LocalStepRunner } from "../exec/local-runner.js";
import { ProcessExecutor } from "../exec/process.js";
import { RunnerDaemon } from "../runner/runner.js";
import type { CliContext } from "./context.js";
import { version } from "./version.js";

export function defaultRunnerId(config: Config): string {
  return config.runnerId ?? `${config.hostname}-${newId("r").slice(-6)}`;
}

/** A runner daemon that runs its jobs as process groups on this machine, as `config` describes it. */
export function localRunnerDaemon(
  config: Config,
  env: Record<string, string | undefined>,
  connection: { serverUrl: string; token: string; id: string; logger: Logger },
): RunnerDaemon {
  return new RunnerDaemon({
    serverUrl: connection.serverUrl,
    token: connection.token,
    info: {
      id: connection.id,
      group: config.group,
      labels: config.labels,
      mode: config.mode,
      capacity: config.capacity,
      cpus: config.cpus ?? null,
      memory: config.memory ?? null,
      hostname: config.hostname,
      tenant_id: config.tenantId ?? null,
      version,
    },
    // The step-attempt takes runyard's own credentials out of the env and masks them.
    stepRunner: new LocalStepRunner(new ProcessExecutor(), {
      baseEnv: env as Record<string, string>,
      killGraceMs: config.killGraceMs,
      maskValues: [connection.token],
    }),
    logger: connection.logger,
  });
}

/** `runyard runner --server URL --token T`: joins a server and runs the jobs it is given. */
export async function runnerCommand(ctx: CliContext): Promise<number> {
  const config = ctx.config;
  if (!config.serverUrl) {
    throw new RunyardError("USAGE", "the runner needs the server's URL", {
      hint: "Pass --server http://HOST:8088 or set RUNYARD_SERVER_URL (ADOS_API_URL).",
    });
  }
  if (!config.token) {
    throw new RunyardError("USAGE", "the runner needs a runner token", {
      hint: "On the server: `runyard token create --runner --group G`; then pass --token or set RUNYARD_TOKEN.",
    });
  }
  if (config.workspaceDir) {
    mkdirSync(config.workspaceDir, { recursive: true });
    process.chdir(config.workspaceDir);
  }
  const logger = createLogger({ level: config.logLevel === "warn" ? "info" : config.logLevel, daemon: true });
  const id = defaultRunnerId(config);
  const daemon = localRunnerDaemon(config, ctx.env, {
    serverUrl: config.serverUrl,
    token: config.token,
    id,
    logger,
  });
  const stopped = new Promise<void>((resolve) => {
    const off = ctx.onInterrupt(() => {
      off();
      resolve();
    });
  });
  const connected = daemon.start().then(
    () => {
      ctx.stdout.write(
        `runner ${id} connected to ${config.serverUrl} (group ${config.group}, capacity ${config.capacity})\n`,
      );
      return true;
    },
    (error: Error) => {
      ctx.stderr.write(
        `error: ${error.message}\nhint: check the token; make one with \`runyard token create --runner\`\n`,
      );
      return false;
    },
  );
  const outcome = await Promise.race([connected, stopped.then(() => "stopped" as const)]);
  if (outcome === false) return 2;
  if (outcome !== "stopped") await stopped;
  await daemon.stop();
  return 0;
}
