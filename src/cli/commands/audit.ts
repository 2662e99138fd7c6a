import type { Command } from "commander";
import { type CommandDeps, serverFlags } from "./options.js";

/** `runyard audit` and `runyard usage`: what happened and what it cost. */
export function registerAudit(program: Command, { api, setExit }: CommandDeps): void {
  serverFlags(
    program
      .command("audit")
      .description("the audit log, newest first: logins, token, user and secret changes, cancels (admins)")
      .option("--action <action>", "only this action, e.g. login, token.create, secret.set, run.cancel")
      .option("--limit <n>", "how many entries (default 50, at most 500)")
      .option("--tenant <id>", "platform admins: one tenant's entries")
      .option("--since <time>", "only entries at or after this ISO-8601 time")
      .option("--json", "JSON output"),
  ).action(async (flags) => setExit(await (await import("../audit.js")).auditList(flags, await api(flags))));

  serverFlags(
    program
      .command("usage")
      .description(
        "agents' spend: tokens and dollars per user, agent, model or tenant (members: their tenant's)",
      )
      .option("--tenant <id>", "platform admins: one tenant's spend (default: every tenant)")
      .option("--by <grouping>", "user, agent, model or tenant (default user)")
      .option("--since <span>", "a span back from now (24h, 7d, 2w) or a UTC date (default 7d)")
      .option("--json", "JSON output"),
  ).action(async (flags) => setExit(await (await import("../budget.js")).usageShow(flags, await api(flags))));
}
