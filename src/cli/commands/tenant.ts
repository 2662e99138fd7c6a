import type { Command } from "commander";
import { registerBudget } from "./budget.js";
import { type CommandDeps, collect, serverFlags } from "./options.js";

/** `runyard tenant`: a tenant's budgets and bot alert rules. */
export function registerTenant(program: Command, { api, setExit }: CommandDeps): void {
  const tenant = program
    .command("tenant")
    .description("a tenant's settings (its agents' spend budget, its bots' alert rules)");
  registerBudget(tenant, "tenant", { api, setExit });

  const tenantBotAlerts = tenant
    .command("bot-alerts")
    .description("the alert rules every bot of a tenant is watched for (a bot's own of a kind override)");
  serverFlags(
    tenantBotAlerts
      .command("set")
      .argument("<tenant>", "the tenant's id")
      .description("set them (the tenant's admins, platform admins); replaces the rules set before")
      .option(
        "--alert <rule>",
        "memory>80%/5m, restarts>=3/10m or unhealthy, one per kind (repeatable)",
        collect,
        [],
      )
      .option(
        "--notify <url>",
        "where they are POSTed for bots with no notify URL of their own (repeatable)",
        collect,
        [],
      )
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("../tenant-bot-alerts.js")).tenantBotAlertsSet(name, flags, await api(flags)),
    ),
  );
  serverFlags(
    tenantBotAlerts
      .command("show <tenant>")
      .description("the rules and who set them (anyone of the tenant)")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("../tenant-bot-alerts.js")).tenantBotAlertsShow(name, flags, await api(flags)),
    ),
  );
  serverFlags(
    tenantBotAlerts.command("clear <tenant>").description("remove them; bots keep their own alerts"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../tenant-bot-alerts.js")).tenantBotAlertsClear(name, await api(flags))),
  );
}
