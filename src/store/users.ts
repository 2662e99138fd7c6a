import { randomBytes } from "node:crypto";
import type { Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { StoreContext } from "./dialect.js";
import { isoTime, type UsersTable } from "./schema.js";
import type { NewUser, UserRecord, UserWithHash } from "./types.js";

const recordColumns = [
  "id",
  "username",
  "tenant_id",
  "role",
  "created_at",
  "password_changed_at",
  "sessions_valid_after",
] as const;

function toUserRecord(row: Omit<Selectable<UsersTable>, "password_hash">): UserRecord {
  return {
    id: row.id,
    username: row.username,
    tenant_id: row.tenant_id,
    role: row.role,
    created_at: row.created_at,
    password_changed_at: row.password_changed_at,
    sessions_valid_after: row.sessions_valid_after,
  };
}

export async function createUser(ctx: StoreContext, input: NewUser): Promise<UserRecord> {
  const now = isoTime(ctx.now());
  const record: UserRecord = {
    id: newId("usr"),
    username: input.username,
    tenant_id: input.tenant_id ?? null,
    role: input.role,
    created_at: now,
    password_changed_at: now,
    sessions_valid_after: now,
  };
  try {
    await ctx.db
      .insertInto("users")
      .values({ ...record, password_hash: input.password_hash })
      .execute();
  } catch (error) {
    if (ctx.dialect.constraintViolation(error) === "unique") {
      // The same words whoever holds the name: a tenant's admin learns nothing of other tenants.
      throw new RunyardError("USERNAME_TAKEN", `the username ${input.username} is taken`, {
        cause: error,
      });
    }
    throw error;
  }
  return record;
}

export async function getUser(ctx: StoreContext, id: string): Promise<UserRecord | undefined> {
  const row = await ctx.db.selectFrom("users").select(recordColumns).where("id", "=", id).executeTakeFirst();
  return row ? toUserRecord(row) : undefined;
}

export async function findUserByName(ctx: StoreContext, username: string): Promise<UserWithHash | undefined> {
  const row = await ctx.db
    .selectFrom("users")
    .select([...recordColumns, "password_hash"])
    .where("username", "=", username)
    .executeTakeFirst();
  return row ? { ...toUserRecord(row), password_hash: row.password_hash } : undefined;
}

export async function listUsers(
  ctx: StoreContext,
  query: { tenantId?: string | null } = {},
): Promise<UserRecord[]> {
  let select = ctx.db.selectFrom("users").select(recordColumns);
  if (query.tenantId === null) select = select.where("tenant_id", "is", null);
  else if (query.tenantId !== undefined) select = select.where("tenant_id", "=", query.tenantId);
  const rows = await select.orderBy("username").execute();
  return rows.map(toUserRecord);
}

export async function setUserPassword(
  ctx: StoreContext,
  id: string,
  passwordHash: string,
): Promise<UserRecord | undefined> {
  const now = isoTime(ctx.now());
  await ctx.db
    .updateTable("users")
    .set({ password_hash: passwordHash, password_changed_at: now, sessions_valid_after: now })
    .where("id", "=", id)
    .execute();
  return getUser(ctx, id);
}

export async function removeUser(ctx: StoreContext, id: string): Promise<boolean> {
  // Foreign keys cascade too; deleting explicitly keeps it so on a database that does not enforce them.
  return ctx.db.transaction().execute(async (tx) => {
    await tx.deleteFrom("tokens").where("user_id", "=", id).execute();
    await tx.deleteFrom("revoked_sessions").where("user_id", "=", id).execute();
    const result = await tx.deleteFrom("users").where("id", "=", id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  });
}

export async function revokeSession(
  ctx: StoreContext,
  sessionId: string,
  userId: string,
  expiresAt: string,
): Promise<void> {
  const now = isoTime(ctx.now());
  await ctx.db.deleteFrom("revoked_sessions").where("expires_at", "<", now).execute();
  await ctx.db
    .insertInto("revoked_sessions")
    .values({ id: sessionId, user_id: userId, expires_at: isoTime(expiresAt) })
    .onConflict((oc) => oc.column("id").doNothing())
    .execute();
}

export async function sessionRevoked(ctx: StoreContext, sessionId: string): Promise<boolean> {
  const row = await ctx.db
    .selectFrom("revoked_sessions")
    .select("id")
    .where("id", "=", sessionId)
    .executeTakeFirst();
  return row !== undefined;
}

/** Inserted at most once (the first replica wins the primary key), then read back by everyone. */
export async function serverKey(ctx: StoreContext, name: string): Promise<string> {
  const stored = async () =>
    ctx.db.selectFrom("server_keys").select("value").where("name", "=", name).executeTakeFirst();
  let row = await stored();
  if (!row) {
    await ctx.db
      .insertInto("server_keys")
      .values({
        name,
        value: ctx.cipher.seal(randomBytes(32).toString("base64url")),
        created_at: isoTime(ctx.now()),
      })
      .onConflict((oc) => oc.column("name").doNothing())
      .execute();
    row = await stored();
  }
  if (!row) throw new Error(`server key ${name} could not be stored`);
  return ctx.cipher.open(row.value);
}
