import type { Command } from "commander";
import { type CommandDeps, collect, serverFlags } from "./options.js";

/** `runyard hook`: webhooks that start saved workflows. */
export function registerHooks(program: Command, { api, setExit }: CommandDeps): void {
  const hook = program
    .command("hook")
    .description("signed webhooks that run a saved workflow (GitHub's X-Hub-Signature-256)");
  serverFlags(
    hook
      .command("create")
      .description("make a hook; a generated secret is printed once")
      .argument("<name>", "unique within your tenant; deliveries go to the URL printed, /api/hooks/ID")
      .requiredOption("--workflow <name>", "the saved workflow each delivery runs")
      .option("--secret-stdin", "read the secret from standard input instead of generating one")
      .option(
        "--var <NAME=$.path>",
        "an input the workflow declares (inputs:, HOOK_...) picked from the delivery's JSON body (repeatable)",
        collect,
        [],
      )
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../hook.js")).hookCreate(name, flags, await api(flags))),
  );
  serverFlags(
    hook.command("list").description("the hooks of your tenant").option("--json", "JSON output"),
  ).action(async (flags) => setExit(await (await import("../hook.js")).hookList(flags, await api(flags))));
  serverFlags(
    hook
      .command("rm <name>")
      .description("remove a hook")
      .option("--tenant <id>", "platform admins: the tenant whose hook of that name to remove"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../hook.js")).hookRemove(name, flags, await api(flags))),
  );
}
