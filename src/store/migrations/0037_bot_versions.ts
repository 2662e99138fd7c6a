import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Bot health and versions (docs/bots.md "Health checks", "Updates and rollback").
 *
 * `bots.health`: what the last probe of its health check found (JSON: status, failures, output,
 * at), null without a check. `bots.version`: the version running now (1 at its start).
 *
 * `bot_versions`: one row per version of a bot: its start, each update, rollback and env change.
 * `run_id` is the run of that version's life, whose sealed spec holds what it is made of (so a
 * rollback starts that spec again); `summary` is what may be shown of it (the source without
 * archive bytes or passwords, env names). `state`: starting while an update waits for it to be
 * healthy, live while it runs, failed when it never became healthy, replaced once a later one took
 * over.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema.alterTable("bots").addColumn("health", text).execute();
  await db.schema
    .alterTable("bots")
    .addColumn("version", "integer", (col) => col.notNull().defaultTo(1))
    .execute();
  await db.schema
    .createTable("bot_versions")
    .addColumn("bot_id", text, (col) => col.notNull())
    .addColumn("version", "integer", (col) => col.notNull())
    .addColumn("run_id", text)
    .addColumn("state", text, (col) => col.notNull())
    .addColumn("reason", text, (col) => col.notNull())
    .addColumn("summary", text, (col) => col.notNull())
    .addColumn("image", text)
    .addColumn("error", text)
    .addColumn("created_by", text)
    .addColumn("created_at", text, (col) => col.notNull())
    .addColumn("finished_at", text)
    .addPrimaryKeyConstraint("bot_versions_pk", ["bot_id", "version"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("bot_versions").execute();
  await db.schema.alterTable("bots").dropColumn("version").execute();
  await db.schema.alterTable("bots").dropColumn("health").execute();
}
