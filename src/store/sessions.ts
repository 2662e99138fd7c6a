import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";

async function revokeSession(
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

async function sessionRevoked(ctx: StoreContext, sessionId: string): Promise<boolean> {
  const row = await ctx.db
    .selectFrom("revoked_sessions")
    .select("id")
    .where("id", "=", sessionId)
    .executeTakeFirst();
  return row !== undefined;
}

/** Sessions ended by a logout before they expired; a session is a signed token, not a row. */
export interface SessionsRepo {
  /** Records a logged-out session until it would have expired anyway; prunes the expired ones. */
  revoke(sessionId: string, userId: string, expiresAt: string): Promise<void>;
  /** True when the session was logged out. */
  isRevoked(sessionId: string): Promise<boolean>;
}

export function sessionsRepo(ctx: StoreContext): SessionsRepo {
  return {
    revoke: (sessionId, userId, expiresAt) => revokeSession(ctx, sessionId, userId, expiresAt),
    isRevoked: (sessionId) => sessionRevoked(ctx, sessionId),
  };
}
