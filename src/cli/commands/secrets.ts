import type { Command } from "commander";
import { type CommandDeps, serverFlags, tenantOption } from "./options.js";

/** `runyard secret`: a tenant's secrets. */
export function registerSecrets(program: Command, { api, setExit }: CommandDeps): void {
  const secret = program
    .command("secret")
    .description("manage your tenant's secrets; workflows name them in secrets: (values never shown)");
  const tenantHelp = "admin tokens: the tenant whose secrets to manage (default: outside any tenant)";
  serverFlags(
    secret
      .command("set")
      .description("store a secret, or replace its value; the value is read from stdin")
      .argument("<name>", "an environment-variable name, e.g. DEPLOY_KEY")
      .argument("[value]", "refused: a value on the command line lands in shell history")
      .option(tenantOption, tenantHelp),
  ).action(async (name: string, value: string | undefined, flags) =>
    setExit(await (await import("../secret.js")).secretSet(name, value, flags, await api(flags))),
  );
  serverFlags(
    secret
      .command("list")
      .description("the names of the stored secrets, never their values")
      .option(tenantOption, tenantHelp)
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("../secret.js")).secretList(flags, await api(flags))),
  );
  serverFlags(
    secret
      .command("rm <name>")
      .description("remove a secret; runs that list it fail at submit from then on")
      .option(tenantOption, tenantHelp),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../secret.js")).secretRemove(name, flags, await api(flags))),
  );
}
