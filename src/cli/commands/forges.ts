import type { Command } from "commander";
import { type CommandDeps, serverFlags } from "./options.js";

/** `runyard forge`: the code forges a tenant's agents push to. */
export function registerForges(program: Command, { api, setExit }: CommandDeps): void {
  const forge = program
    .command("forge")
    .description("code forges whose labelled issues and /runyard comments start agent tasks");
  serverFlags(
    forge
      .command("add")
      .description("add a repo; prints its webhook URL and secret (once)")
      .argument(
        "<kind>",
        "github (github.com or GitHub Enterprise), gitlab (gitlab.com or self-managed), gitea (Gitea or Forgejo)",
      )
      .requiredOption(
        "--repo <OWNER/NAME>",
        "the repo whose issues start tasks (GitLab: the project's full path)",
      )
      .option(
        "--url <api>",
        "the forge's API or server URL (default https://api.github.com, https://gitlab.com, https://codeberg.org)",
      )
      .option("--secret-stdin", "read the forge's API token from standard input (required)")
      .option("--label <label>", "the issue label that starts a task (default runyard)")
      .option("--agent <name>", "the agent tasks run with (default claude_code)")
      .option("--test <command>", "run this shell command after the agent; failing it fails the task")
      .option("--sandbox <image>", "run the agent in a hardened container of this image")
      .option("--json", "JSON output"),
  ).action(async (kind: string, flags) =>
    setExit(await (await import("../forge.js")).forgeAdd(kind, flags, await api(flags))),
  );
  serverFlags(
    forge.command("list").description("the forges of your tenant").option("--json", "JSON output"),
  ).action(async (flags) => setExit(await (await import("../forge.js")).forgeList(flags, await api(flags))));
  serverFlags(forge.command("rm <id>").description("remove a forge")).action(async (id: string, flags) =>
    setExit(await (await import("../forge.js")).forgeRemove(id, await api(flags))),
  );
}
