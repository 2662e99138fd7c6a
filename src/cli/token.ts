import { RunyardError } from "../core/errors.js";
import type { TokenRecord } from "../store/index.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { auditLocal, throughApi, withHomeStore } from "./home-store.js";
import { printList } from "./table.js";

export interface TokenFlags {
  runner?: boolean;
  user?: boolean;
  admin?: boolean;
  group?: string;
  name?: string;
  tenant?: string;
  /** When the token stops working (ISO-8601). */
  expiresAt?: string;
  /** Write into this data folder's database instead of asking the server. */
  home?: string;
}

/**
 * `runyard token create`: through the API when a token is set (to `--server`, RUNYARD_SERVER_URL
 * or the default URL, like every other command), else straight into the database of `--home` /
 * RUNYARD_HOME / ./.runyard on the server's machine. Through the API, `--user` asked by a
 * logged-in user (or with their personal token) makes a personal token of theirs.
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
  if (flags.expiresAt !== undefined && Number.isNaN(Date.parse(flags.expiresAt))) {
    throw new RunyardError("USAGE", `--expires-at ${flags.expiresAt}: not a date`, {
      hint: "Give an ISO-8601 time, e.g. 2027-01-31T00:00:00Z.",
    });
  }
  const input = {
    kind,
    name: flags.name ?? `${kind} token`,
    ...(flags.group ? { group: flags.group } : {}),
    ...(flags.tenant ? { tenant_id: flags.tenant } : {}),
    ...(flags.expiresAt ? { expires_at: new Date(flags.expiresAt).toISOString() } : {}),
  };
  const viaApi = throughApi(ctx, flags.home);
  // The URL runners reach this server at: the one asked, or the one a local server listens on.
  const serverUrl = viaApi ? apiClient(ctx).baseUrl : `http://${ctx.config.host}:${ctx.config.port}`;
  const secret = viaApi
    ? (await apiClient(ctx).request<{ token: string }>("POST", "/api/tokens", input)).token
    : await withHomeStore(ctx, async (store) => {
        const { record, secret: made } = await store.tokens.create(input);
        await auditLocal(store, {
          action: "token.create",
          target: record.id,
          tenant_id: record.tenant_id,
          details: { kind: record.kind, name: record.name, group: record.group, user_id: record.user_id },
        });
        return made;
      });
  ctx.stdout.write(`${secret}\n`);
  ctx.stderr.write(
    kind === "runner"
      ? `runner token created${flags.group ? ` for group ${flags.group}` : ""}; start a runner with:\n  runyard runner --server ${serverUrl} --token ${secret}${flags.group ? ` --group ${flags.group}` : ""}\n`
      : `${kind} token created; use it as RUNYARD_TOKEN\n`,
  );
  return 0;
}

/** `runyard token list`: an admin sees every token, anyone else their own. */
export async function tokenList(flags: { json?: boolean; home?: string }, ctx: CliContext): Promise<number> {
  const tokens = throughApi(ctx, flags.home)
    ? await apiClient(ctx).request<TokenRecord[]>("GET", "/api/tokens")
    : await withHomeStore(ctx, (store) => store.tokens.list());
  return printList(ctx.stdout, tokens, {
    json: flags.json,
    indentJson: true,
    empty: "no tokens",
    header: ["ID", "KIND", "NAME", "TENANT", "OWNER", "LAST USED", "EXPIRES"],
    row: (token) => [
      token.id,
      token.kind,
      token.name,
      token.tenant_id ?? "-",
      token.user_id ?? "-",
      token.last_used_at ?? "never",
      token.expires_at ?? "never",
    ],
  });
}

/** `runyard token revoke ID`: the token stops working at once. */
export async function tokenRevoke(id: string, flags: { home?: string }, ctx: CliContext): Promise<number> {
  if (throughApi(ctx, flags.home)) {
    await apiClient(ctx).request("DELETE", `/api/tokens/${encodeURIComponent(id)}`);
  } else if (
    !(await withHomeStore(ctx, async (store) => {
      const token = await store.tokens.get(id);
      if (!token || !(await store.tokens.revoke(id))) return false;
      await auditLocal(store, {
        action: "token.revoke",
        target: token.id,
        tenant_id: token.tenant_id,
        details: { kind: token.kind, name: token.name, user_id: token.user_id },
      });
      return true;
    }))
  ) {
    throw new RunyardError("NOT_FOUND", `token ${id} does not exist`, {
      hint: "`runyard token list` shows the tokens.",
    });
  }
  ctx.stderr.write(`token ${id} revoked\n`);
  return 0;
}
