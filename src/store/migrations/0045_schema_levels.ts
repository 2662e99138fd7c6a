import { type Kysely, sql } from "kysely";
import { columnTypes, isPostgres } from "./column-types.js";

/**
 * What lets replicas of two releases share one database (docs/upgrading.md):
 * - `replicas.schema_level`: the newest migration each replica's runyard knows (its number). A
 *   replica of an older release writes its row without it (null: older than any level), so its
 *   release's replicas are known to be alive while a newer one runs beside them.
 * - `runyard_migration_state`: one row, the oldest schema level whose runyard may still write
 *   (`writers_from`) and the release that level is; a replica older than that stops writing.
 * - `runyard_migration_finished`: the migrations whose contract part (`finish`) has run.
 *
 * Only adds: 0.1.0's replicas keep working beside it. Its `finish`, once none of them is alive,
 * makes every replica name its level.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema.alterTable("replicas").addColumn("schema_level", "integer").execute();
  await db.schema
    .createTable("runyard_migration_state")
    .addColumn("id", "integer", (col) => col.primaryKey())
    .addColumn("writers_from", "integer", (col) => col.notNull())
    .addColumn("writers_version", text, (col) => col.notNull())
    .execute();
  await db.schema
    .createTable("runyard_migration_finished")
    .addColumn("name", text, (col) => col.primaryKey())
    .addColumn("finished_at", text, (col) => col.notNull())
    .execute();
}

/** Rows of replicas gone before they named a level get 0; then the column is required. */
export async function finish(db: Kysely<unknown>): Promise<void> {
  await sql`update replicas set schema_level = 0 where schema_level is null`.execute(db);
  if (isPostgres(db)) {
    await sql`alter table replicas alter column schema_level set not null`.execute(db);
    return;
  }
  // SQLite cannot tighten a column in place: the table is made again (no key refers to it).
  const { text } = columnTypes(db);
  await db.schema
    .createTable("replicas_levelled")
    .addColumn("id", text, (col) => col.primaryKey())
    .addColumn("hostname", text, (col) => col.notNull())
    .addColumn("url", text)
    .addColumn("version", text, (col) => col.notNull())
    .addColumn("started_at", text, (col) => col.notNull())
    .addColumn("seen_at", text, (col) => col.notNull())
    .addColumn("schema_level", "integer", (col) => col.notNull())
    .execute();
  await sql`insert into replicas_levelled (id, hostname, url, version, started_at, seen_at, schema_level)
    select id, hostname, url, version, started_at, seen_at, schema_level from replicas`.execute(db);
  await db.schema.dropTable("replicas").execute();
  await db.schema.alterTable("replicas_levelled").renameTo("replicas").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("runyard_migration_finished").execute();
  await db.schema.dropTable("runyard_migration_state").execute();
  await db.schema.alterTable("replicas").dropColumn("schema_level").execute();
}
