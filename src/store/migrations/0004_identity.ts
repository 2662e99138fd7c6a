import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * People who log in (docs/security.md, "Users, tokens and sessions"): `users` with argon2id
 * password hashes; personal API tokens owned by a user (`tokens.user_id`, removed with the user)
 * and tokens that expire (`tokens.expires_at`); `server_keys` holds the key that signs session
 * JWTs, sealed with the store's cipher, so every replica on one database verifies the same
 * sessions; `revoked_sessions` holds the sessions logged out before they expire.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("users")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("username", text, (col) => col.notNull().unique())
    .addColumn("tenant_id", text)
    .addColumn("role", text, (col) => col.notNull())
    .addColumn("password_hash", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("password_changed_at", text, (col) => col.notNull())
    .addColumn("sessions_valid_after", text, (col) => col.notNull())
    .execute();
  await db.schema
    .alterTable("tokens")
    .addColumn("user_id", text, (col) => col.references("users.id").onDelete("cascade"))
    .execute();
  await db.schema.alterTable("tokens").addColumn("expires_at", text).execute();
  await db.schema.createIndex("tokens_user").on("tokens").column("user_id").execute();
  await db.schema
    .createTable("server_keys")
    .addColumn("name", text, (col) => col.primaryKey())
    .addColumn("value", text, (col) => col.notNull())
    .addColumn("created_at", text, (col) => col.notNull())
    .execute();
  await db.schema
    .createTable("revoked_sessions")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("user_id", text, (col) => col.notNull().references("users.id").onDelete("cascade"))
    .addColumn("expires_at", text, (col) => col.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("revoked_sessions").execute();
  await db.schema.dropTable("server_keys").execute();
  await db.schema.dropIndex("tokens_user").execute();
  await db.schema.alterTable("tokens").dropColumn("expires_at").execute();
  await db.schema.alterTable("tokens").dropColumn("user_id").execute();
  await db.schema.dropTable("users").execute();
}
