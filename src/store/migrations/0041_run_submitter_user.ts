import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * `runs.created_by_user`: the user behind `created_by` (the token's user, or the user who
 * signed in), kept on the run so that revoking the token later leaves the run that user's: their
 * spend, their quota, "you submitted this run" for approvals. Null for a token of no user.
 * Filled in for the runs before it from the tokens and users there are.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema.alterTable("runs").addColumn("created_by_user", text).execute();
  await sql`update runs set created_by_user = (select tokens.user_id from tokens where tokens.id = runs.created_by)
            where created_by is not null`.execute(db);
  await sql`update runs set created_by_user = created_by
            where created_by_user is null and created_by in (select id from users)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("runs").dropColumn("created_by_user").execute();
}
