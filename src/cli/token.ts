import { existsSync } from "node:fs";
import { join } from "node:path";
import { resolveHome } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import { openSqliteStore } from "../store/sqlite.js";
import type { CliContext } from "./context.js";
import { apiClient } from "./runs.js";

export interface TokenFlags {
  runner?: boolean;
  user?: boolean;
  admin?: boolean;
  group?: string;
  name?: string;
  tenant?: string;
  /** Write into this data folder's database instead of asking the server. */
  home?: string;
}

/**
 * `runyard token create`: through the API when a token is set (to `--server`, RUNYARD_SERVER_URL
 * or the default URL, like every other command), else straight into the database of `--home` /
 * RUNYARD_HOME / ./.runyard on the server's machine, which must already exist: a fresh database in
 * the wrong folder would only make a token no server knows.
 */
export async function tokenCreate(flags: TokenFlags, ctx: CliContext): Promise<number> {
  const kinds = [flags.runner && "runner", flags.user && "user", flags.admin && "admin"].filter(Boolean);
  if (kinds.length !== 1) {
    throw new RunyardError("USAGE", "say which kind of token: --runner, --user or --admin", {
      hint: "Runners join with a runner token: runyard token create --runner --group G",
    });
  }
  const kind = kinds[0] as "runner" | "user" | "admin";
  if (flags.group && kind !== "runner") throw new RunyardError("USAGE", "--group is only for runner tokens");
  const input = {
    kind,
    name: flags.name ?? `${kind} token`,
    ...(flags.group ? { group: flags.group } : {}),
    ...(flags.tenant ? { tenant_id: flags.tenant } : {}),
  };
  let secret: string;
  if (ctx.config.token && !flags.home) {
    secret = (await apiClient(ctx).request<{ token: string }>("POST", "/api/tokens", input)).token;
  } else {
    const home = resolveHome(ctx.config, ctx.cwd);
    if (!existsSync(join(home, "runyard.db"))) {
      throw new RunyardError("USAGE", `no runyard database in ${home}`, {
        hint: "Set RUNYARD_TOKEN to the admin token `runyard up` printed (and --server URL if not local), or pass --home with the server's data folder.",
      });
    }
    const store = await openSqliteStore(join(home, "runyard.db"));
    try {
      secret = (await store.createToken(input)).secret;
    } finally {
      await store.close();
    }
  }
  ctx.stdout.write(`${secret}\n`);
  ctx.stderr.write(
    kind === "runner"
      ? `runner token created${flags.group ? ` for group ${flags.group}` : ""}; start a runner with:\n  runyard runner --server URL --token ${secret}\n`
      : `${kind} token created; use it as RUNYARD_TOKEN\n`,
  );
  return 0;
}
