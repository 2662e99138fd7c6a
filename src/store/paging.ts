import { type SelectQueryBuilder, sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { StoreContext } from "./dialect.js";

/** Paging of a list that comes newest first. */
export interface PageQuery {
  /** Page size: default 50, at most 500. */
  limit?: number;
  /** Cursor: the `next` of the previous page (an id); the page starts after that row. */
  before?: string;
}

/** A page's size: `limit` as a whole number from 1 to `max`, `byDefault` when none is given. */
export function pageSize(limit: number | undefined, byDefault = 50, max = 500): number {
  if (limit === undefined || !Number.isFinite(limit)) return byDefault;
  return Math.min(max, Math.max(1, Math.trunc(limit)));
}

/**
 * One page of `select` (already filtered) by keyset, newest first: `time` desc, then `id` desc,
 * after the row `page.before` names. `next` is present when there are more. An unknown cursor is
 * INVALID_INPUT, naming the row it sought as `noun`.
 */
export async function newestFirstPage<DB, TB extends keyof DB, O extends { id: string }>(
  ctx: StoreContext,
  from: { table: "runs" | "audit_events"; time: "created_at" | "at"; noun: string },
  select: SelectQueryBuilder<DB, TB, O>,
  page: PageQuery,
): Promise<{ rows: O[]; next?: string }> {
  const limit = pageSize(page.limit);
  const time = sql.ref(from.time);
  if (page.before !== undefined) {
    const { rows } = await sql<{ id: string; time: string }>`
      select id, ${time} as time from ${sql.table(from.table)} where id = ${page.before}`.execute(ctx.db);
    const after = rows[0];
    if (!after) {
      throw new RunyardError("INVALID_INPUT", `unknown page cursor: no ${from.noun} ${page.before}`, {
        hint: "Pass the `next` value of the previous page as the cursor, or none for the first page.",
      });
    }
    select = select.where(
      sql<boolean>`(${time} < ${after.time} or (${time} = ${after.time} and id < ${after.id}))`,
    );
  }
  const rows = await select
    .orderBy(time, "desc")
    .orderBy(sql.ref("id"), "desc")
    .limit(limit + 1)
    .execute();
  const last = rows[limit - 1];
  return rows.length > limit && last ? { rows: rows.slice(0, limit), next: last.id } : { rows };
}
