import type { Kysely } from "kysely";

/**
 * `budgets.platform_bound`: 1 when a platform admin set the budget (or a tenant's admin lowered
 * one a platform admin set). A tenant's admin may lower such a budget of a user of theirs, never
 * lift or clear it: before, a platform admin's budget on a tenant admin's own user was hers to
 * remove. The budgets before it are taken as nobody's bound (0), as they behaved.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("budgets")
    .addColumn("platform_bound", "integer", (col) => col.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("budgets").dropColumn("platform_bound").execute();
}
