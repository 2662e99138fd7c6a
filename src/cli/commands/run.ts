import type { Command } from "commander";
import { apiOverrides, type CommandDeps, collect, rawOption, submitFlags } from "./options.js";

/** `runyard run` and `runyard validate`: a workflow file, here or on a server. */
export function registerRun(program: Command, { ctx, api, runCtx, setExit }: CommandDeps): void {
  const run = program
    .command("run")
    .description(
      "run a workflow file here, or on a server with --server or RUNYARD_SERVER_URL (exit 0 success, 1 failed, 2 invalid, 130 canceled)",
    )
    .argument("<file>", "workflow or playbook YAML")
    .option("--var <NAME=value>", "set a variable (repeatable)", collect, [])
    .option("--json", "print the run's events as JSON lines")
    .option("-q, --quiet", "print only failures and the result")
    .option("--no-rollback", "when the run fails, do not run its steps' rollback:");
  submitFlags(rawOption(run)).action(async (file: string, flags) => {
    const context = await runCtx(apiOverrides(flags), { raw: flags.raw });
    // A server named by --server or RUNYARD_SERVER_URL (as the flag's help says) takes the run.
    setExit(
      context.config.serverUrl
        ? await (await import("../runs.js")).submitRun(file, flags, await api(flags))
        : await (await import("../run.js")).runCommand(file, flags, context),
    );
  });

  program
    .command("validate")
    .description("check a workflow file and report every problem with its line and column")
    .argument("<file>", "workflow or playbook YAML")
    .action(async (file: string) =>
      setExit(await (await import("../validate.js")).validateCommand(file, await ctx())),
    );
}
