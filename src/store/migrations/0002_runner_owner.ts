import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * A runner id belongs to the runner token that first registered it (docs/architecture.md, "The life of a run"): a
 * hello under that id from another token is refused. Revoking the token frees the id.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("runners").addColumn("token_id", columnTypes(db).text).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("runners").dropColumn("token_id").execute();
}
