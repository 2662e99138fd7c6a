import { RunyardError } from "../core/errors.js";
import { RunEvent } from "../core/events.js";
import type { StoreContext } from "./dialect.js";
import { int, isoTime } from "./schema.js";
import type { AppendEventsOptions, AppendResult, ListEventsQuery } from "./types.js";

/**
 * Rows per insert statement. Every full chunk compiles to the same SQL, so the SQLite
 * backend's statement cache prepares it once; 5 parameters a row stays far below the
 * parameter limits (SQLite 32766, PostgreSQL 65535).
 */
const insertChunk = 100;
const defaultListLimit = 1000;
const maxListLimit = 10_000;

export async function appendEvents(
  ctx: StoreContext,
  events: readonly RunEvent[],
  opts: AppendEventsOptions = {},
): Promise<AppendResult> {
  const { job } = opts;
  if (events.length === 0 && !job) return { duplicate: false, inserted: 0 };
  try {
    return await ctx.db.transaction().execute(async (trx) => {
      if (job) {
        // The compare-and-set comes first: it takes the write lock before anything is read,
        // and a batch that lost the race (or was sent before) writes nothing.
        const advanced = await trx
          .updateTable("jobs")
          .set({ last_event_seq: job.seq, updated_at: isoTime(ctx.now()) })
          .where("id", "=", job.id)
          .where("last_event_seq", "<", job.seq)
          .executeTakeFirst();
        if (advanced.numUpdatedRows === 0n) {
          const known = await trx.selectFrom("jobs").select("id").where("id", "=", job.id).executeTakeFirst();
          if (!known) throw new RunyardError("NOT_FOUND", `no job ${job.id}`);
          return { duplicate: true, inserted: 0 };
        }
      }
      let inserted = 0;
      const lastSeqs = new Map<string, number>();
      for (let start = 0; start < events.length; start += insertChunk) {
        const rows = events.slice(start, start + insertChunk).map((event) => {
          if (event.seq > (lastSeqs.get(event.run_id) ?? 0)) lastSeqs.set(event.run_id, event.seq);
          return {
            run_id: event.run_id,
            seq: event.seq,
            type: event.type,
            ts: event.ts,
            data: JSON.stringify(event),
          };
        });
        const result = await trx
          .insertInto("run_events")
          .values(rows)
          .onConflict((conflict) => conflict.columns(["run_id", "seq"]).doNothing())
          .executeTakeFirst();
        inserted += Number(result.numInsertedOrUpdatedRows ?? 0n);
      }
      for (const [runId, seq] of lastSeqs) {
        await trx
          .updateTable("runs")
          .set({ last_seq: seq })
          .where("id", "=", runId)
          .where("last_seq", "<", seq)
          .execute();
      }
      return { duplicate: false, inserted };
    });
  } catch (error) {
    if (ctx.dialect.constraintViolation(error) === "foreign_key") {
      const runIds = [...new Set(events.map((event) => event.run_id))].join(", ");
      throw new RunyardError("NOT_FOUND", `events for a run that does not exist (${runIds})`, {
        cause: error,
      });
    }
    throw error;
  }
}

export async function listEvents(
  ctx: StoreContext,
  runId: string,
  query: ListEventsQuery = {},
): Promise<RunEvent[]> {
  const limit = Number.isFinite(query.limit)
    ? Math.min(maxListLimit, Math.max(1, Math.trunc(query.limit ?? defaultListLimit)))
    : defaultListLimit;
  const after = Number.isFinite(query.after) ? (query.after ?? 0) : 0;
  const rows = await ctx.db
    .selectFrom("run_events")
    .select(["seq", "data"])
    .where("run_id", "=", runId)
    .where("seq", ">", after)
    .orderBy("seq")
    .limit(limit)
    .execute();
  return rows.map((row) => {
    const parsed = RunEvent.safeParse(JSON.parse(row.data));
    if (!parsed.success) {
      throw new RunyardError(
        "INTERNAL",
        `stored event ${runId}#${int(row.seq)} does not match the event schema`,
        {
          details: parsed.error.issues,
        },
      );
    }
    return parsed.data;
  });
}

export async function lastSeq(ctx: StoreContext, runId: string): Promise<number | undefined> {
  const row = await ctx.db.selectFrom("runs").select("last_seq").where("id", "=", runId).executeTakeFirst();
  return row && int(row.last_seq);
}
