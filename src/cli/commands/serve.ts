import type { Command } from "commander";
import { type CommandDeps, graceMs, serveOverrides } from "./options.js";

/** The long-running commands: `up`, `server`, `runner` and `agent-server`. */
export function registerServe(program: Command, { ctx, setExit }: CommandDeps): void {
  const serveOptions = (command: Command): Command =>
    command
      .option("--host <address>", "address to bind (RUNYARD_HOST; default 127.0.0.1)")
      .option("--port <port>", "port (RUNYARD_PORT; default 8088)")
      .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard)")
      .option(
        "--database <url>",
        "a PostgreSQL database instead of <home>/runyard.db (RUNYARD_DATABASE_URL); several servers may share one",
      )
      .option(
        "--shutdown-grace <seconds>",
        "on SIGTERM, how long running steps may finish (RUNYARD_SHUTDOWN_GRACE_MS; default 30)",
      )
      .option("--config <file>", "config file (YAML)");
  serveOptions(
    program.command("up").description("start the server with a local runner (SQLite under ./.runyard)"),
  ).action(async (flags) =>
    setExit(
      await (await import("../server.js")).upCommand(flags, await ctx(serveOverrides(flags), flags.config)),
    ),
  );
  serveOptions(
    program.command("server").description("start the control plane; runners join with `runyard runner`"),
  )
    .option("--memory", "keep everything in memory (nothing persists)")
    .action(async (flags) =>
      setExit(
        await (await import("../server.js")).serverCommand(
          flags,
          await ctx(serveOverrides(flags), flags.config),
        ),
      ),
    );

  program
    .command("runner")
    .description("join a server and run its jobs (RUNYARD_* or ADOS_* env, flags, or --config)")
    .option(
      "--server <url,...>",
      "server URL, or several replicas comma-separated to fail over between (RUNYARD_SERVER_URL / ADOS_API_URL)",
    )
    .option("--token <token>", "runner token (RUNYARD_TOKEN / ADOS_TOKEN)")
    .option("--id <id>", "runner id (RUNYARD_RUNNER_ID)")
    .option("--group <group>", "runner group (RUNYARD_GROUP)")
    .option("--labels <a,b>", "labels (RUNYARD_LABELS)")
    .option("--capacity <n>", "runs at once (RUNYARD_CAPACITY)")
    .option(
      "--shared",
      "take runs of every tenant too, not only runs outside any tenant; needs a working bubblewrap (bwrap) and a runner token made without --tenant (RUNYARD_SHARED=1)",
    )
    .option("--mode <mode>", "chat, issue or all (RUNYARD_MODE)")
    .option("--workspace-dir <dir>", "working folder (RUNYARD_WORKSPACE_DIR)")
    .option(
      "--home <dir>",
      "state folder; the runner keeps its journals in <home>/runners/<id> (RUNYARD_HOME)",
    )
    .option(
      "--shutdown-grace <seconds>",
      "on SIGTERM, how long running steps may finish (RUNYARD_SHUTDOWN_GRACE_MS; default 30)",
    )
    .option("--config <file>", "config file (YAML)")
    .option(
      "--json",
      "log and status lines as JSON, one object a line (RUNYARD_LOG_FORMAT=json; default: plain lines on a terminal, JSON otherwise)",
    )
    .action(async (flags) =>
      setExit(
        await (await import("../runner.js")).runnerCommand(
          await ctx(
            {
              serverUrl: flags.server,
              token: flags.token,
              runnerId: flags.id,
              group: flags.group,
              labels: flags.labels,
              capacity: flags.capacity,
              shared: flags.shared,
              mode: flags.mode,
              workspaceDir: flags.workspaceDir,
              home: flags.home,
              shutdownGraceMs: graceMs(flags.shutdownGrace),
              ...(flags.json ? { logFormat: "json" } : {}),
            },
            flags.config,
          ),
        ),
      ),
    );

  program
    .command("agent-server")
    .description("listen for direct dispatch from workflows (inventory hosts with address:)")
    .requiredOption("--addr <addr>", "address to listen on, e.g. :7072 or 0.0.0.0:7072")
    .option("--token <token>", "token dispatchers must send (RUNYARD_TOKEN)")
    .action(async (flags) =>
      setExit(await (await import("../agent-server.js")).agentServerCommand(flags, await ctx())),
    );
}
