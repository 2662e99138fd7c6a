import type { Command } from "commander";
import { type CommandDeps, collect, rawHelp, serverFlags, submitFlags, tenantOption } from "./options.js";

/** `runyard workflow` and `runyard schedule`: saved workflows, their versions and schedules. */
export function registerWorkflows(program: Command, { api, setExit }: CommandDeps): void {
  const workflow = program
    .command("workflow")
    .description("save workflows on a server under a name, in versions, and run them by name");
  const workflowTenant = "platform admins: the tenant whose saved workflows to act on";
  serverFlags(
    workflow
      .command("save")
      .description(
        "check a workflow file and save it as the next version of its name (live at once unless others' hooks or schedules run it)",
      )
      .argument("<file>", "workflow YAML")
      .option("--name <name>", "the name to save it under (default: the file name without extension)")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (file: string, flags) =>
    setExit(await (await import("../workflow.js")).workflowSave(file, flags, await api(flags))),
  );
  serverFlags(
    workflow
      .command("list")
      .description("the saved workflows of your tenant")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("../workflow.js")).workflowList(flags, await api(flags))),
  );
  serverFlags(
    workflow
      .command("show <name>")
      .description("a saved workflow's text, versions and schedules")
      .option("--version <n>", "this version instead of the newest")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../workflow.js")).workflowShow(name, flags, await api(flags))),
  );
  serverFlags(
    workflow
      .command("promote <name>")
      .description("make a pending version the one the workflow's hooks and schedules run")
      .argument("<version>", "the pending version (`runyard workflow show NAME` lists them)")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (name: string, version: string, flags) =>
    setExit(await (await import("../workflow.js")).workflowPromote(name, version, flags, await api(flags))),
  );
  serverFlags(
    workflow
      .command("rm <name>")
      .description("remove a saved workflow: every version and its schedules")
      .option(tenantOption, workflowTenant),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../workflow.js")).workflowRemove(name, flags, await api(flags))),
  );
  submitFlags(
    workflow
      .command("run <name>")
      .description("run a saved workflow (the newest version unless --version)")
      .option("--var <NAME=value>", "set a variable (repeatable)", collect, [])
      .option("--version <n>", "run this version")
      .option("-f, --follow", "stream the run's output until it ends (exit code as `runyard run`)")
      .option("--json", "JSON output (with --follow: the run's events as JSON lines)")
      .option("-q, --quiet", "with --follow: print only failures and the result")
      .option("--raw", rawHelp)
      .option(tenantOption, workflowTenant),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../workflow.js")).workflowRun(name, flags, await api(flags))),
  );
  const schedule = program
    .command("schedule")
    .description("the schedules of saved workflows (their `schedule:` entries)");
  serverFlags(
    schedule
      .command("list")
      .description("the schedules of your tenant's saved workflows: next tick, last tick and what it did")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("../schedule.js")).scheduleList(flags, await api(flags))),
  );
}
