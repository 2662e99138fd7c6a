import { RunyardError } from "../core/errors.js";
import { usernamePattern } from "../core/usernames.js";
import { triggersOfUser, type UserTrigger } from "../server/acting-for.js";
import { hashPassword, newPassword } from "../server/identity/passwords.js";
import type { UserRecord } from "../store/index.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { auditLocal, readStdinSecret, throughApi, withHomeStore } from "./home-store.js";
import { printList } from "./table.js";

/** Below this a password is taken, with a warning: the operator chose it. */
const shortPassword = 12;

interface UserAnswer {
  user: UserRecord;
  password?: string;
}

interface WhereFlags {
  home?: string;
}

/**
 * `runyard user add NAME --role admin|member --tenant T`: the password comes from stdin
 * (`--password-stdin`) or is made at random and printed once. There is no default password.
 */
export async function userAdd(
  name: string,
  flags: WhereFlags & { role?: string; tenant?: string; passwordStdin?: boolean },
  ctx: CliContext,
): Promise<number> {
  checkUsername(name);
  const role = flags.role;
  if (role !== "admin" && role !== "member") {
    throw new RunyardError("USAGE", "say the user's role: --role admin or --role member", {
      hint: "runyard user add NAME --tenant T --role member; an admin without --tenant is a platform admin.",
    });
  }
  if (role === "member" && !flags.tenant) {
    throw new RunyardError("USAGE", "a member belongs to a tenant: give --tenant T");
  }
  const given = flags.passwordStdin ? await readStdinSecret(ctx, "password") : undefined;
  if (given !== undefined) warnIfShort(given, ctx);
  const body = { username: name, role, ...(flags.tenant ? { tenant_id: flags.tenant } : {}) };
  let answer: UserAnswer;
  if (throughApi(ctx, flags.home)) {
    answer = await apiClient(ctx).request<UserAnswer>("POST", "/api/users", {
      ...body,
      ...(given !== undefined ? { password: given } : {}),
    });
  } else {
    const password = given ?? newPassword();
    const passwordHash = await hashPassword(password);
    const user = await withHomeStore(ctx, async (store) => {
      const created = await store.users.create({
        username: name,
        role,
        tenant_id: flags.tenant ?? null,
        password_hash: passwordHash,
      });
      await auditLocal(store, {
        action: "user.add",
        target: created.username,
        tenant_id: created.tenant_id,
        details: { user_id: created.id, role: created.role, password_generated: given === undefined },
      });
      return created;
    });
    answer = { user, ...(given === undefined ? { password } : {}) };
  }
  const where = answer.user.tenant_id ? ` in tenant ${answer.user.tenant_id}` : " (platform admin)";
  ctx.stderr.write(`user ${answer.user.username} added as ${answer.user.role}${where}\n`);
  printPassword(answer, ctx);
  return 0;
}

export async function userList(flags: WhereFlags & { json?: boolean }, ctx: CliContext): Promise<number> {
  const users = throughApi(ctx, flags.home)
    ? await apiClient(ctx).request<UserRecord[]>("GET", "/api/users")
    : await withHomeStore(ctx, (store) => store.users.list());
  return printList(ctx.stdout, users, {
    json: flags.json,
    indentJson: true,
    empty: "no users (add one: runyard user add NAME --role admin)",
    header: ["USERNAME", "ROLE", "TENANT", "CREATED", "PASSWORD CHANGED"],
    row: (user) => [
      user.username,
      user.role,
      user.tenant_id ?? "-",
      user.created_at,
      user.password_changed_at,
    ],
  });
}

/** `runyard user remove NAME`: sessions end at once, personal tokens are deleted. */
export async function userRemove(name: string, flags: WhereFlags, ctx: CliContext): Promise<number> {
  checkUsername(name);
  let stopped: UserTrigger[];
  if (throughApi(ctx, flags.home)) {
    stopped = (
      await apiClient(ctx).request<{ stopped_triggers: UserTrigger[] }>(
        "DELETE",
        `/api/users/${encodeURIComponent(name)}`,
      )
    ).stopped_triggers;
  } else {
    stopped = await withHomeStore(ctx, async (store) => {
      const user = await store.users.findByName(name);
      if (!user) throw unknownUser(name);
      const theirs = await triggersOfUser(store, user);
      await store.users.remove(user.id);
      await auditLocal(store, {
        action: "user.remove",
        target: user.username,
        tenant_id: user.tenant_id,
        details: { user_id: user.id, role: user.role },
      });
      return theirs;
    });
  }
  ctx.stderr.write(`user ${name} removed; their sessions and personal tokens no longer work\n`);
  for (const trigger of stopped) {
    const what =
      trigger.workflow === null
        ? `forge ${trigger.name}`
        : `${trigger.kind} ${trigger.name} (saved workflow ${trigger.workflow})`;
    ctx.stderr.write(`${what} was theirs and starts no run from now on\n`);
  }
  if (stopped.length > 0) {
    ctx.stderr.write(
      "hint: a tenant admin takes these over: a hook by making it again (runyard hook rm NAME; runyard hook create NAME --workflow W), a schedule by saving its workflow again, a forge by adding it again (runyard forge rm ID; runyard forge add)\n",
    );
  }
  return 0;
}

/** `runyard user passwd NAME`: a new password (stdin or random); every session of the user ends. */
export async function userPasswd(
  name: string,
  flags: WhereFlags & { passwordStdin?: boolean },
  ctx: CliContext,
): Promise<number> {
  checkUsername(name);
  const given = flags.passwordStdin ? await readStdinSecret(ctx, "password") : undefined;
  if (given !== undefined) warnIfShort(given, ctx);
  let answer: UserAnswer;
  if (throughApi(ctx, flags.home)) {
    answer = await apiClient(ctx).request<UserAnswer>(
      "POST",
      `/api/users/${encodeURIComponent(name)}/password`,
      given !== undefined ? { password: given } : {},
    );
  } else {
    const password = given ?? newPassword();
    const passwordHash = await hashPassword(password);
    const user = await withHomeStore(ctx, async (store) => {
      const found = await store.users.findByName(name);
      const updated = found && (await store.users.setPassword(found.id, passwordHash));
      if (!updated) throw unknownUser(name);
      await auditLocal(store, {
        action: "user.passwd",
        target: updated.username,
        tenant_id: updated.tenant_id,
        details: { user_id: updated.id, password_generated: given === undefined },
      });
      return updated;
    });
    answer = { user, ...(given === undefined ? { password } : {}) };
  }
  ctx.stderr.write(`password of ${answer.user.username} changed; their sessions have ended\n`);
  printPassword(answer, ctx);
  return 0;
}

function printPassword(answer: UserAnswer, ctx: CliContext): void {
  if (answer.password === undefined) return;
  ctx.stderr.write("password (shown once; only its argon2id hash is stored):\n");
  ctx.stdout.write(`${answer.password}\n`);
}

function warnIfShort(password: string, ctx: CliContext): void {
  if (password.length < shortPassword) {
    ctx.stderr.write(
      `warning: the password is shorter than ${shortPassword} characters; logins are rate-limited, but a longer one is safer\n`,
    );
  }
}

function checkUsername(name: string): void {
  if (!usernamePattern.test(name)) {
    throw new RunyardError("USAGE", `${JSON.stringify(name)} is not a valid username`, {
      hint: "Use 1 to 64 letters, digits and . _ @ -, starting with a letter or digit.",
    });
  }
}

function unknownUser(name: string): RunyardError {
  return new RunyardError("NOT_FOUND", `user ${name} does not exist`, {
    hint: "`runyard user list` shows the users.",
  });
}
