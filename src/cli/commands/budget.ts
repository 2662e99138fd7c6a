import type { Command } from "commander";
import { type CommandDeps, serverFlags } from "./options.js";

/**
 * `runyard tenant budget` and `runyard user budget`: an agent spend budget in US dollars per UTC
 * day and month, set, shown and cleared under `parent` (the `tenant` or `user` command).
 */
export function registerBudget(
  parent: Command,
  scope: "tenant" | "user",
  { api, setExit }: Pick<CommandDeps, "api" | "setExit">,
): void {
  const noun = scope;
  const budget = parent
    .command("budget")
    .description(`the ${noun}'s agent spend budget in US dollars per UTC day and month`);
  serverFlags(
    budget
      .command("set")
      .argument("<name>", `the ${noun === "tenant" ? "tenant's id" : "username"}`)
      .description(
        scope === "tenant"
          ? "set a tenant's budget (platform admins); a turn past it is refused with BUDGET_EXCEEDED"
          : "set a user's budget (admins); a turn past it is refused with BUDGET_EXCEEDED",
      )
      .option("--usd-per-day <usd>", "dollars per UTC day")
      .option("--usd-per-month <usd>", "dollars per UTC calendar month"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../budget.js")).budgetSet(scope, name, flags, await api(flags))),
  );
  serverFlags(
    budget
      .command("show <name>")
      .description("the limits, where they come from, and what each period has spent")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../budget.js")).budgetShow(scope, name, flags, await api(flags))),
  );
  serverFlags(
    budget.command("clear <name>").description("remove the budget set; the config file's applies again"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../budget.js")).budgetClear(scope, name, await api(flags))),
  );
}
