import { Command, CommanderError } from "commander";
import { ConfigError } from "../core/config-error.js";
import { RunyardError } from "../core/errors.js";
import { printableLines } from "../core/terminal-text.js";
import { version } from "../core/version.js";
import { outputClosed } from "./closed-output.js";
import { registerAgent } from "./commands/agent.js";
import { registerAgents } from "./commands/agents.js";
import { registerAudit } from "./commands/audit.js";
import { registerBot } from "./commands/bot.js";
import { registerDb } from "./commands/db.js";
import { registerForges } from "./commands/forges.js";
import { registerHooks } from "./commands/hooks.js";
import { registerIdentity } from "./commands/identity.js";
import { apiOverrides, type CommandDeps, type ContextFor, type RunContextFor } from "./commands/options.js";
import { registerRun } from "./commands/run.js";
import { registerRuns } from "./commands/runs.js";
import { registerSecrets } from "./commands/secrets.js";
import { registerServe } from "./commands/serve.js";
import { registerTenant } from "./commands/tenant.js";
import { registerWorkflows } from "./commands/workflows.js";
import { terminalSafe } from "./terminal-stream.js";

/** Builds the command tree; each action sets the process exit code. */
function buildProgram(
  ctx: ContextFor,
  runCtx: RunContextFor,
  setExit: (code: number) => void,
  stderr: (s: string) => void,
): Command {
  const deps: CommandDeps = {
    ctx,
    api: (flags) => ctx({ ...apiOverrides(flags), home: flags.home }, undefined, { raw: flags.raw }),
    runCtx,
    setExit,
  };
  const program = new Command("runyard")
    .description("Self-hosted runner platform: YAML workflows, AI coding agents, long-running bots.")
    .version(version)
    .exitOverride()
    // Options after a command are that command's: `workflow show NAME --version 2` is not `-V`.
    .enablePositionalOptions()
    .configureOutput({ writeErr: stderr })
    .showSuggestionAfterError(true);

  // One file a command group (commands/): each registers its commands and their actions.
  registerRun(program, deps);
  registerServe(program, deps);
  registerIdentity(program, deps);
  registerSecrets(program, deps);
  registerWorkflows(program, deps);
  registerForges(program, deps);
  registerHooks(program, deps);
  registerAudit(program, deps);
  registerTenant(program, deps);
  registerAgents(program, deps);
  registerDb(program, deps);
  registerAgent(program, deps);
  registerBot(program, deps);
  registerRuns(program, deps);
  return program;
}

/** The CLI entry point; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const stderr = terminalSafe(process.stderr, false);
  const write = (s: string): void => {
    stderr.write(s);
  };
  // A reader that stops early (`runyard runs logs ID | head`) closes the pipe (closed-output.ts).
  let closed = false;
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    if (closed) return;
    closed = true;
    outputClosed(write);
  });
  let exitCode = 0;
  const program = buildProgram(
    async (overrides, configFile, output) =>
      (await import("./process-context.js")).processContext(overrides, configFile, output),
    async (overrides, output) => (await import("./process-context.js")).runContext(overrides, output),
    (code) => {
      exitCode = code;
    },
    write,
  );
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    return reportError(error, write);
  }
}

function reportError(error: unknown, write: (s: string) => void): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  if (error instanceof ConfigError) {
    write(`error: ${error.message}\n`);
    return 2;
  }
  if (error instanceof RunyardError) {
    // A server's message and hint may quote what a user chose (a name, a group): plain text only.
    write(
      `error: ${printableLines(error.message)}\n${error.hint ? `hint: ${printableLines(error.hint)}\n` : ""}`,
    );
    if (error.code === "HOST_UNREACHABLE" || error.code === "INTERNAL") return 1;
    return error.status >= 400 ? 2 : 1;
  }
  write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return 1;
}
