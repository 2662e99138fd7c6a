import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * `revoked_tokens`: whose each revoked API token was (`user_id`; null for a token of no user),
 * kept after its `tokens` row is deleted. A hook, a schedule, a forge or a saved version made
 * through a token still names that token; the runs it triggers after the token is revoked are
 * then still that user's (their run quota, their spend budget, "you submitted this run"), where
 * before they were nobody's and freed the user of their own limits.
 *
 * Filled in from the revocations the audit log still holds (`token.revoke`, whose details name
 * the token's user; a user removed since is left out), and the runs stored since with no user
 * take theirs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("revoked_tokens")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("user_id", text)
    .addColumn("revoked_at", text, (col) => col.notNull())
    .execute();
  await db.schema.createIndex("revoked_tokens_user_idx").on("revoked_tokens").column("user_id").execute();
  const revocations = await sql<{ target: string; at: string; details: string }>`
    select target, at, details from audit_events
    where action = 'token.revoke' and outcome = 'ok' and target is not null
    order by at`.execute(db);
  const seen = new Set<string>();
  for (const row of revocations.rows) {
    if (seen.has(row.target)) continue;
    seen.add(row.target);
    const userId = userIdOf(row.details);
    if (userId === undefined) continue;
    await sql`insert into revoked_tokens (id, user_id, revoked_at) values (${row.target}, ${userId}, ${row.at})`.execute(
      db,
    );
  }
  // A removed user's tokens are forgotten with them, as removing a user now does.
  await sql`delete from revoked_tokens where user_id is not null and user_id not in (select id from users)`.execute(
    db,
  );
  await sql`update runs set created_by_user = (select revoked_tokens.user_id from revoked_tokens where revoked_tokens.id = runs.created_by)
            where created_by_user is null and created_by in (select id from revoked_tokens where user_id is not null)`.execute(
    db,
  );
}

/** The `user_id` a revocation's details name; undefined when they name none (not a token's). */
function userIdOf(details: string): string | null | undefined {
  try {
    const parsed = JSON.parse(details) as { user_id?: unknown };
    if (parsed.user_id === null || typeof parsed.user_id === "string") return parsed.user_id;
  } catch {
    // Details that are not JSON name nobody.
  }
  return undefined;
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("revoked_tokens").execute();
}
