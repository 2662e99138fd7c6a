import { mkdirSync } from "node:fs";
import { type Config, resolveHome } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import { createLogger, type LogFormat } from "../core/logger.js";
import { parseServerUrls } from "../core/server-urls.js";
import { localRunnerDaemon } from "../runner/assembly/local-runner.js";
import { type CliContext, exitCodeForSignal, untilInterrupted } from "./context.js";
import { runnerIdFor } from "./runner-id.js";

/**
 * The runner's output format: as configured (`--json`, RUNYARD_LOG_FORMAT), else plain lines on a
 * terminal and JSON lines for a service manager, a pipe or a file, as log collectors expect.
 */
function logFormatFor(configured: Config["logFormat"], stderr: NodeJS.WritableStream): LogFormat {
  if (configured !== "auto") return configured;
  return (stderr as { isTTY?: boolean }).isTTY ? "text" : "json";
}

/**
 * The runner's own status lines (connected, stopping) in its log's format: a plain line, or one
 * JSON object a line shaped like the log's (`level` 30, `time`, `msg`, fields).
 */
function sayer(format: LogFormat) {
  return (stream: NodeJS.WritableStream, message: string, fields: Record<string, unknown>): void => {
    stream.write(
      format === "json"
        ? `${JSON.stringify({ level: 30, time: Date.now(), msg: message, ...fields })}\n`
        : `${message}\n`,
    );
  };
}

/**
 * `runyard runner --server URL[,URL...] --token T`: joins a server and runs the jobs it is given;
 * with several URLs (replicas of one control plane), fails over between them.
 */
export async function runnerCommand(ctx: CliContext): Promise<number> {
  const config = ctx.config;
  const serverUrls = parseServerUrls(config.serverUrl ?? "");
  if (serverUrls.length === 0) {
    throw new RunyardError("USAGE", "the runner needs the server's URL", {
      hint: "Pass --server http://HOST:8088 (several replicas: --server http://a:8088,http://b:8088) or set RUNYARD_SERVER_URL (ADOS_API_URL).",
    });
  }
  if (!config.token) {
    throw new RunyardError("USAGE", "the runner needs a runner token", {
      hint: "On the server: `runyard token create --runner --group G`; then pass --token or set RUNYARD_TOKEN.",
    });
  }
  const home = resolveHome(config, ctx.cwd);
  if (config.workspaceDir) {
    mkdirSync(config.workspaceDir, { recursive: true });
    process.chdir(config.workspaceDir);
  }
  const format = logFormatFor(config.logFormat, ctx.stderr);
  const logger = createLogger({
    level: config.logLevel === "warn" ? "info" : config.logLevel,
    daemon: true,
    format,
  });
  const say = sayer(format);
  const id = runnerIdFor(config, home);
  let connections = 0;
  const runner = await localRunnerDaemon(config, ctx.env, {
    serverUrls,
    token: config.token,
    id,
    logger,
    home,
    shared: config.shared,
    onConnected(serverUrl) {
      connections += 1;
      say(
        ctx.stdout,
        connections === 1
          ? `runner ${id} connected to ${serverUrl} (group ${config.group}, capacity ${config.capacity})`
          : `runner ${id} connected to ${serverUrl}`,
        { runnerId: id, server: serverUrl },
      );
    },
  });
  const daemon = runner.daemon;
  const stopped = untilInterrupted(ctx);
  const connected = daemon.start().then(
    () => true,
    (error: Error) => {
      // Said as every command's error is, whatever the format: the log has it as JSON already.
      // One write: the log's own lines go to the same terminal and must not come between them.
      const hint = error instanceof RunyardError && error.hint ? `hint: ${error.hint}\n` : "";
      ctx.stderr.write(`error: ${error.message}\n${hint}`);
      return false;
    },
  );
  const outcome = await Promise.race([connected, stopped.then(() => "stopped" as const)]);
  if (outcome === false) {
    await runner.stop(0);
    return 2;
  }
  const signal = await stopped;
  const running = daemon.runningJobs;
  const stopping = runner.stop(config.shutdownGraceMs);
  if (running > 0) {
    say(
      ctx.stderr,
      `stopping: ${running} running job(s) get up to ${config.shutdownGraceMs / 1000} s to finish`,
      { running },
    );
  }
  await stopping;
  return exitCodeForSignal(signal);
}
