import type { Command } from "commander";
import { type CommandDeps, collect, rawHelp, serverFlags, submitFlags } from "./options.js";

/** `runyard runs` and `runyard runners`: a server's runs and runners. */
export function registerRuns(program: Command, { api, setExit }: CommandDeps): void {
  const runs = program.command("runs").description("look at and control runs on a server");
  serverFlags(
    runs
      .command("list")
      .description("list runs, newest first")
      .option("--status <status>", "only runs in this state")
      .option("--kind <kind>", "workflow, agent or bot")
      .option("--limit <n>", "how many")
      .option("--json", "JSON output"),
  ).action(async (flags) => setExit(await (await import("../runs.js")).runsList(flags, await api(flags))));
  serverFlags(
    runs.command("show <run>").description("one run's state and steps").option("--json", "JSON output"),
  ).action(async (id: string, flags) =>
    setExit(await (await import("../runs.js")).runsShow(id, flags, await api(flags))),
  );
  serverFlags(
    runs
      .command("logs <run>")
      .description("a run's output")
      .option("-f, --follow", "keep following until the run ends")
      .option("--raw", rawHelp)
      .option("--json", "events as JSON lines"),
  ).action(async (id: string, flags) =>
    setExit(await (await import("../runs.js")).runsLogs(id, flags, await api(flags))),
  );
  serverFlags(runs.command("cancel <run>").description("cancel a queued or running run")).action(
    async (id: string, flags) => setExit(await (await import("../runs.js")).runsCancel(id, await api(flags))),
  );
  submitFlags(
    runs
      .command("retry <run>")
      .description(
        "retry a finished workflow run from a step: a new run that keeps the steps that succeeded before it (in a graph: those it does not depend on) and runs the rest",
      )
      .option("--from <step>", "the step to run again from (default: the first step that did not succeed)")
      .option("--workflow <file>", "an edited workflow file that replaces the run's steps from there on")
      .option("--var <NAME=value>", "set a variable over the run's (repeatable)", collect, [])
      .option("-f, --follow", "follow the new run until it ends (exit 0 success, 1 failed, 130 canceled)")
      .option("--json", "JSON output"),
  ).action(async (id: string, flags) =>
    setExit(await (await import("../runs-retry.js")).runsRetry(id, flags, await api(flags))),
  );
  submitFlags(
    runs
      .command("run-step <run>")
      .argument("<step>", "the step to run")
      .description("run one step of a finished workflow run again, with every variable the run exported")
      .option("-f, --follow", "follow the new run until it ends (exit 0 success, 1 failed, 130 canceled)")
      .option("--json", "JSON output"),
  ).action(async (id: string, step: string, flags) =>
    setExit(await (await import("../runs-retry.js")).runsRunStep(id, step, flags, await api(flags))),
  );
  for (const verb of ["approve", "reject"] as const) {
    submitFlags(
      runs
        .command(`${verb} <run>`)
        .argument("<step>", "the approval step's name")
        .description(
          verb === "approve"
            ? "approve a waiting approval step: it succeeds and the run goes on"
            : "reject a waiting approval step: it fails (APPROVAL_REJECTED), and so does the run",
        )
        .option("--comment <text>", "why; kept with the answer in the run's events and the audit log")
        .option(
          "--input <NAME=value>",
          "approve: fill in one of the step's inputs (repeatable); the values become its exports",
          collect,
          [],
        )
        .option("--json", "JSON output"),
    ).action(async (id: string, step: string, flags) =>
      setExit(
        await (await import("../approvals.js")).answerApproval(id, step, verb, flags, await api(flags)),
      ),
    );
  }
  serverFlags(
    program.command("runners").description("list the server's runners").option("--json", "JSON output"),
  ).action(async (flags) => setExit(await (await import("../runs.js")).runnersList(flags, await api(flags))));
}
