import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";

/** Sessions ended by a logout before they expired; a session is a signed token, not a row. */
export interface SessionsRepo {
  /** Records a logged-out session until it would have expired anyway; prunes the expired ones. */
  revoke(sessionId: string, userId: string, expiresAt: string): Promise<void>;
  /** True when the session was logged out. */
  isRevoked(sessionId: string): Promise<boolean>;
}

export function sessionsRepo(ctx: StoreContext): SessionsRepo {
  return {
    async revoke(sessionId, userId, expiresAt) {
      const now = isoTime(ctx.now());
      await ctx.db.deleteFrom("revoked_sessions").where("expires_at", "<", now).execute();
      await ctx.db
        .insertInto("revoked_sessions")
        .values({ id: sessionId, user_id: userId, expires_at: isoTime(expiresAt) })
        .onConflict((oc) => oc.column("id").doNothing())
        .execute();
    },
    async isRevoked(sessionId) {
      const row = await ctx.db
        .selectFrom("revoked_sessions")
        .select("id")
        .where("id", "=", sessionId)
        .executeTakeFirst();
      return row !== undefined;
    },
  };
}
