// Flags and option helpers the command groups of this folder share, and what each registers its actions with.
import type { Command } from "commander";
import type { Config } from "../../core/config.js";
import { RunyardError } from "../../core/errors.js";
import type { RunConfig } from "../../core/run-config.js";
import type { CliContext } from "../context.js";
import type { OutputOptions } from "../process-context.js";

export type Overrides = Partial<Record<keyof Config, unknown>>;
/** Builds a command's context; loads the config schema (zod) only for a command that runs. */
export type ContextFor = (
  overrides?: Overrides,
  configFile?: string,
  output?: OutputOptions,
) => Promise<CliContext>;
/** A server command's context: server flags, `--home` (to write a data folder's database instead), `--raw`. */
export type ApiContextFor = (flags: ApiFlags & { home?: string; raw?: boolean }) => Promise<CliContext>;
/** Builds `runyard run`'s context: only the settings it reads, checked without zod's whole weight. */
export type RunContextFor = (overrides?: Overrides, output?: OutputOptions) => Promise<CliContext<RunConfig>>;

/** `--raw`, on the commands that print what steps, agents and bots printed. */
export const rawHelp =
  "print output as it came: on a terminal, escape sequences other than colours are dropped unless this is given";
export const rawOption = (command: Command): Command => command.option("--raw", rawHelp);

/** The flag by which admins name the tenant a command acts for. */
export const tenantOption = "--tenant <id>";

export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The health check flags of `bot start` and `bot update`. */
export function botHealthOptions(command: Command): Command {
  return command
    .option("--health-cmd <cmd>", "health check: a shell command run inside the container; exit 0 is healthy")
    .option(
      "--health-http <port/path>",
      "health check: GET this port and path inside the container's network, e.g. 8080/healthz",
    )
    .option("--health-interval <duration>", "time between probes (default 30s)")
    .option("--health-timeout <duration>", "a probe that takes longer fails and is killed (default 5s)")
    .option("--health-retries <n>", "failures in a row that make it unhealthy (default 3)")
    .option(
      "--health-start-period <duration>",
      "failures this soon after the start do not count (default 0s)",
    );
}

export const botHealthHelp = `
Health: with --health-cmd or --health-http the bot is "starting" until a probe passes, "running" while
they pass, and "unhealthy" after --health-retries failures in a row; an unhealthy bot is restarted
if its --restart policy says so. \`runyard bot status NAME\` shows the last probe's output.`;

/** How long `bot update`, `rollback` and `env set|unset` wait for the new version. */
export function updateWaitOptions(command: Command): Command {
  return command
    .option(
      "--min-ready <duration>",
      "without a health check: how long the new version must run first (default 10s)",
    )
    .option(
      "--timeout <duration>",
      "give up on the new version after this long, build included (default 4m, at most 280s)",
    );
}

/** Flags shared by the commands that talk to a server. */
export function serverFlags(command: Command): Command {
  return command
    .option(
      "--server <url>",
      "server URL; replicas comma-separated, the first that accepts a connection is used (RUNYARD_SERVER_URL; default http://127.0.0.1:8088)",
    )
    .option("--token <token>", "API token (RUNYARD_TOKEN)");
}

/** Flags of the commands that create something on a server (a run, a bot, an answer). */
export function submitFlags(command: Command): Command {
  return serverFlags(command).option(
    "--retry-for <duration>",
    "while the server answers 503 or the connection drops, send the submit again (same Idempotency-Key) for this long: 2m (default), 90s, 0 for never (RUNYARD_RETRY_FOR)",
  );
}

/** The flags of `serverFlags` and `submitFlags`. */
export interface ApiFlags {
  server?: string;
  token?: string;
  retryFor?: string;
}

export const apiOverrides = (flags: ApiFlags): Overrides => ({
  serverUrl: flags.server,
  token: flags.token,
  retryFor: flags.retryFor,
});

/** `--shutdown-grace` is in seconds, as people say it; the config keeps milliseconds. */
export function graceMs(seconds: string | undefined): unknown {
  if (seconds === undefined) return undefined;
  const value = Number(seconds);
  if (!Number.isFinite(value) || value < 0) {
    throw new RunyardError("USAGE", `--shutdown-grace ${seconds}: expected a number of seconds, like 30`);
  }
  return Math.round(value * 1000);
}

/** The flags `up` and `server` share, as config overrides. */
export function serveOverrides(flags: {
  host?: string;
  port?: string;
  home?: string;
  shutdownGrace?: string;
  database?: string;
}): Overrides {
  return {
    host: flags.host,
    port: flags.port,
    home: flags.home,
    databaseUrl: flags.database,
    shutdownGraceMs: graceMs(flags.shutdownGrace),
  };
}

/** What every command group registers its actions with (main.ts's buildProgram). */
export interface CommandDeps {
  /** A command's context: env, config file and flags, the process's streams and signals. */
  ctx: ContextFor;
  api: ApiContextFor;
  runCtx: RunContextFor;
  setExit: (code: number) => void;
}
