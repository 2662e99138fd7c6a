import { Command, CommanderError, Option } from "commander";
import { ConfigError, loadConfig } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import type { CliContext } from "./context.js";
import { runCommand } from "./run.js";
import { validateCommand } from "./validate.js";

const version = "0.1.0";

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Builds the command tree; each action returns the process exit code. */
function buildProgram(ctx: () => CliContext, setExit: (code: number) => void): Command {
  const program = new Command("runyard")
    .description("Self-hosted runner platform: YAML workflows, AI coding agents, long-running bots.")
    .version(version)
    .exitOverride()
    .configureOutput({ writeErr: (s) => ctx().stderr.write(s), writeOut: (s) => ctx().stdout.write(s) })
    .showSuggestionAfterError(true);

  program
    .command("run")
    .description("run a workflow file here (exit 0 success, 1 failed, 2 invalid input, 130 canceled)")
    .argument("<file>", "workflow or playbook YAML")
    .option("--var <NAME=value>", "set a variable (repeatable)", collect, [])
    .option("--json", "print the run's events as JSON lines")
    .option("-q, --quiet", "print only failures and the result")
    .action(async (file: string, flags) => setExit(await runCommand(file, flags, ctx())));

  program
    .command("validate")
    .description("check a workflow file and report every problem with its line and column")
    .argument("<file>", "workflow or playbook YAML")
    .action(async (file: string) => setExit(await validateCommand(file, ctx())));

  program.addOption(new Option("--log-level <level>", "log level").hideHelp());
  return program;
}

/** The CLI entry point; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let context: CliContext | undefined;
  const ctx = (): CliContext => {
    context ??= processContext();
    return context;
  };
  let exitCode = 0;
  const program = buildProgram(ctx, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    return reportError(error, (s) => process.stderr.write(s));
  }
}

function reportError(error: unknown, write: (s: string) => void): number {
  if (error instanceof CommanderError) {
    return error.exitCode === 0 ? 0 : 2;
  }
  if (error instanceof ConfigError) {
    write(`error: ${error.message}\n`);
    return 2;
  }
  if (error instanceof RunyardError) {
    write(`error: ${error.message}\n`);
    if (error.hint) write(`hint: ${error.hint}\n`);
    return error.status >= 500 ? 1 : error.status >= 400 ? 2 : 1;
  }
  write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return 1;
}

function processContext(): CliContext {
  const env = process.env;
  return {
    config: loadConfig(env),
    env,
    cwd: process.cwd(),
    stdout: process.stdout,
    stderr: process.stderr,
    color: Boolean(process.stdout.isTTY) && !env.NO_COLOR,
    onInterrupt(handler) {
      let count = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        count += 1;
        if (count > 1) process.exit(signal === "SIGINT" ? 130 : 143);
        handler();
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      return () => {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      };
    },
  };
}
