import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Where a runner may take work from (docs/security.md): `shared` (0 or 1) says the operator
 * offered it to every tenant, `isolation` how it keeps runs apart (`sandbox`, `docker`, `none`).
 * Runners recorded before this migration said neither: not shared, no isolation.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("runners")
    .addColumn("shared", "integer", (col) => col.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable("runners")
    .addColumn("isolation", columnTypes(db).text, (col) => col.notNull().defaultTo(sql`'none'`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ["isolation", "shared"]) {
    await db.schema.alterTable("runners").dropColumn(column).execute();
  }
}
