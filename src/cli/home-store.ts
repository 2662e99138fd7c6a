import { existsSync } from "node:fs";
import { join } from "node:path";
import { resolveHome } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import { secretKeyFor } from "../server/home.js";
import type { AuditAction, Store } from "../store/index.js";
import { openSqliteStore } from "../store/sqlite.js";
import type { CliContext } from "./context.js";

/**
 * Whether a command that manages tokens or users asks the server (a token is set and no
 * `--home` given) or writes straight into the database of a home folder on this machine.
 */
export function throughApi(ctx: CliContext, home: string | undefined): boolean {
  return Boolean(ctx.config.token) && !home;
}

/**
 * Runs `use` on the SQLite database of `--home` / RUNYARD_HOME / ./.runyard, which must exist
 * already: a fresh database in the wrong folder would hold users and tokens no server knows.
 */
export async function withHomeStore<T>(ctx: CliContext, use: (store: Store) => Promise<T>): Promise<T> {
  const home = resolveHome(ctx.config, ctx.cwd);
  if (!existsSync(join(home, "runyard.db"))) {
    throw new RunyardError("USAGE", `no runyard database in ${home}`, {
      hint: "Set RUNYARD_TOKEN to the admin token `runyard up` printed (and --server URL if not local), or pass --home with the server's data folder.",
    });
  }
  // The server's key, so a database that holds sealed data (runs, the session key) opens.
  const store = await openSqliteStore(join(home, "runyard.db"), {
    secretKey: secretKeyFor(home, ctx.config.secretKey),
  });
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/**
 * Records a change made straight in the home's database (no server, no token) in the audit log,
 * as the server records the same change made through the API. The actor is `local`: whoever may
 * open the server's data folder on this machine. Never a password or a token's secret.
 */
export async function auditLocal(
  store: Store,
  entry: { action: AuditAction; target: string; tenant_id: string | null; details?: Record<string, unknown> },
): Promise<void> {
  await store.audit.append({
    actor: { kind: "local", user_id: null, token_id: null, username: null },
    tenant_id: entry.tenant_id,
    address: null,
    action: entry.action,
    target: entry.target,
    outcome: "ok",
    details: { via: "home", ...entry.details },
  });
}

/** All of stdin, without the one line ending `echo` or a here-string adds. */
export async function readStdinSecret(ctx: CliContext, what: string): Promise<string> {
  if (!ctx.stdin) throw new RunyardError("USAGE", `--${what}-stdin: this command has no standard input`);
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.stdin)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  const text = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (text === "") throw new RunyardError("USAGE", `--${what}-stdin: standard input was empty`);
  return text;
}
