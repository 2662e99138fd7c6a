import type { Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { isoTime } from "./columns.js";
import { type StoreContext, writeUnique } from "./dialect.js";
import type { UsersTable } from "./schema.js";

export type UserRole = "admin" | "member";

/** Someone who logs in. The password hash is never part of the record (`users.findByName` has it). */
export type UserRecord = Omit<UserWithHash, "password_hash">;

/** A user with the argon2id hash to check a password against. */
export type UserWithHash = Selectable<UsersTable>;

/** What `users.create` needs; the caller hashes the password. */
export type NewUser = Pick<UserWithHash, "username" | "role" | "password_hash"> & {
  tenant_id?: string | null;
};

const recordColumns = [
  "id",
  "username",
  "tenant_id",
  "role",
  "created_at",
  "password_changed_at",
  "sessions_valid_after",
] as const;

/** The people who log in; the caller hashes passwords, the store never sees one in clear. */
export interface UsersRepo {
  /** Stores a user; a username in use is a CONFLICT. */
  create(input: NewUser): Promise<UserRecord>;
  /** One user, or undefined. */
  get(id: string): Promise<UserRecord | undefined>;
  /** The user with this exact username, with its password hash (for login), or undefined. */
  findByName(username: string): Promise<UserWithHash | undefined>;
  /** Users by username; `tenantId` as in `ListRunsQuery`. */
  list(query?: { tenantId?: string | null }): Promise<UserRecord[]>;
  /**
   * Replaces a user's password hash and moves `password_changed_at` and `sessions_valid_after`
   * to now, which ends every session issued before; undefined for an unknown user.
   */
  setPassword(id: string, passwordHash: string): Promise<UserRecord | undefined>;
  /** Deletes a user with its personal tokens and revoked-session and revoked-token rows; false when there was none. */
  remove(id: string): Promise<boolean>;
}

export function usersRepo(ctx: StoreContext): UsersRepo {
  const repo: UsersRepo = {
    async create(input) {
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
      await writeUnique(
        ctx,
        () =>
          ctx.db
            .insertInto("users")
            .values({ ...record, password_hash: input.password_hash })
            .execute(),
        // The same words whoever holds the name: a tenant's admin learns nothing of other tenants.
        (cause) => new RunyardError("USERNAME_TAKEN", `the username ${input.username} is taken`, { cause }),
      );
      return record;
    },
    async get(id) {
      return ctx.db.selectFrom("users").select(recordColumns).where("id", "=", id).executeTakeFirst();
    },
    async findByName(username) {
      return ctx.db.selectFrom("users").selectAll().where("username", "=", username).executeTakeFirst();
    },
    async list(query = {}) {
      let select = ctx.db.selectFrom("users").select(recordColumns);
      if (query.tenantId === null) select = select.where("tenant_id", "is", null);
      else if (query.tenantId !== undefined) select = select.where("tenant_id", "=", query.tenantId);
      return select.orderBy("username").execute();
    },
    async setPassword(id, passwordHash) {
      const now = isoTime(ctx.now());
      await ctx.db
        .updateTable("users")
        .set({ password_hash: passwordHash, password_changed_at: now, sessions_valid_after: now })
        .where("id", "=", id)
        .execute();
      return repo.get(id);
    },
    async remove(id) {
      // Foreign keys cascade too; deleting explicitly keeps it so on a database that does not enforce them.
      return ctx.db.transaction().execute(async (tx) => {
        await tx.deleteFrom("tokens").where("user_id", "=", id).execute();
        await tx.deleteFrom("revoked_sessions").where("user_id", "=", id).execute();
        await tx.deleteFrom("revoked_tokens").where("user_id", "=", id).execute();
        const result = await tx.deleteFrom("users").where("id", "=", id).executeTakeFirst();
        return result.numDeletedRows > 0n;
      });
    },
  };
  return repo;
}
