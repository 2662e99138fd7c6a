import type { Command } from "commander";
import { registerBudget } from "./budget.js";
import { type CommandDeps, serverFlags } from "./options.js";

/** `runyard token` and `runyard user`: who may call a server. */
export function registerIdentity(program: Command, { api, setExit }: CommandDeps): void {
  const token = program.command("token").description("manage tokens");
  serverFlags(
    token
      .command("create")
      .description("create a token (printed once)")
      .option("--runner", "a runner token")
      .option("--user", "a user token")
      .option("--admin", "an admin token")
      .option("--group <group>", "bind a runner token to a group")
      .option("--name <name>", "a name to tell it by")
      .option("--tenant <id>", "the tenant it belongs to")
      .option("--expires-at <time>", "when it stops working (ISO-8601); default never")
      .option("--home <dir>", "data folder, when not going through a server"),
  ).action(async (flags) =>
    setExit(await (await import("../token.js")).tokenCreate(flags, await api(flags))),
  );
  serverFlags(
    token
      .command("list")
      .description("list tokens: an admin sees all, a user their own")
      .option("--json", "JSON output")
      .option("--home <dir>", "data folder, when not going through a server"),
  ).action(async (flags) => setExit(await (await import("../token.js")).tokenList(flags, await api(flags))));
  serverFlags(
    token
      .command("revoke")
      .argument("<id>", "the token id (from `token list`), not the secret")
      .description("revoke a token: it stops working at once")
      .option("--home <dir>", "data folder, when not going through a server"),
  ).action(async (id: string, flags) =>
    setExit(await (await import("../token.js")).tokenRevoke(id, flags, await api(flags))),
  );

  const user = program.command("user").description("manage the users who log in (admins only)");
  const userFlags = (command: Command): Command =>
    serverFlags(command).option("--home <dir>", "data folder, when not going through a server");
  userFlags(
    user
      .command("add")
      .argument("<name>", "the username")
      .description("add a user; prints a one-time random password unless --password-stdin")
      .option("--role <role>", "admin or member")
      .option("--tenant <id>", "the tenant the user belongs to (members need one)")
      .option("--password-stdin", "read the password from standard input"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../user.js")).userAdd(name, flags, await api(flags))),
  );
  userFlags(user.command("list").description("list users").option("--json", "JSON output")).action(
    async (flags) => setExit(await (await import("../user.js")).userList(flags, await api(flags))),
  );
  userFlags(
    user
      .command("remove")
      .argument("<name>", "the username")
      .description("remove a user: sessions end, personal tokens are deleted"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../user.js")).userRemove(name, flags, await api(flags))),
  );
  userFlags(
    user
      .command("passwd")
      .argument("<name>", "the username")
      .description("set a new password (random, printed once, unless --password-stdin); sessions end")
      .option("--password-stdin", "read the password from standard input"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../user.js")).userPasswd(name, flags, await api(flags))),
  );
  registerBudget(user, "user", { api, setExit });
}
