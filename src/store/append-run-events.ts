import { sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { RunEvent, UnnumberedEvent } from "../core/events.js";
import type { StoreContext } from "./dialect.js";
import { advanceJobBatch, dropOldestOutput, fenced } from "./run-events.js";
import { type CutOutput, capRunLog, type RunLogState, rollingOverflow } from "./run-log-cap.js";
import { decodeJson, encodeJson, int } from "./schema.js";
import type { AppendedRunEvents, AppendRunEventsOptions } from "./types.js";

/** Rows per insert statement: every full chunk compiles to the same SQL (statement cache). */
const insertChunk = 100;

/**
 * One transaction, the same on both dialects:
 *
 *   update jobs set last_event_seq = $batch where id = $job and last_event_seq < $batch  -- with a job
 *   update runs set last_seq = last_seq where id = $run returning last_seq, log_*, replica_id
 *   insert into run_events ... (seqs last_seq + 1 ...)
 *   update runs set last_seq = $last, log_bytes = ..., log_cut = ... where id = $run
 *
 * The first `update runs` is there for its lock: PostgreSQL holds the run's row until commit and
 * SQLite takes its write lock before reading, so a concurrent writer waits and then reads the seq
 * this one leaves; both then write what they read, with no gap and no seq twice. The job's
 * compare-and-set comes before it so a duplicate batch does not wait for the run's row.
 */
export async function appendRunEvents(
  ctx: StoreContext,
  runId: string,
  events: readonly UnnumberedEvent[],
  opts: AppendRunEventsOptions = {},
): Promise<AppendedRunEvents> {
  const { job, carrier, logLimit } = opts;
  if (events.length === 0 && !job) return { duplicate: false, events: [] };
  return ctx.db.transaction().execute(async (trx) => {
    if (job && !(await advanceJobBatch({ ...ctx, db: trx }, job))) return { duplicate: true, events: [] };
    const run = await trx
      .updateTable("runs")
      .set({ last_seq: sql`last_seq` })
      .where("id", "=", runId)
      .returning(["last_seq", "log_max_bytes", "log_rolling", "log_bytes", "log_cut", "replica_id"])
      .executeTakeFirst();
    if (!run) throw new RunyardError("NOT_FOUND", `events for a run that does not exist (${runId})`);
    if (carrier !== undefined && run.replica_id !== carrier) throw fenced(runId, carrier);
    const recordsLimit = run.log_max_bytes === null && logLimit !== undefined;
    const before: RunLogState = recordsLimit
      ? {
          maxBytes: Math.max(0, logLimit.maxBytes),
          rolling: logLimit.rolling === true,
          bytes: Math.max(int(run.log_bytes), logLimit.storedBytes),
          cut: null,
        }
      : {
          maxBytes: run.log_max_bytes === null ? 0 : int(run.log_max_bytes),
          rolling: run.log_rolling === 1,
          bytes: int(run.log_bytes),
          cut: run.log_cut === null ? null : decodeJson<CutOutput[]>(run.log_cut),
        };
    const capped = capRunLog(before, events);
    const firstSeq = int(run.last_seq) + 1;
    const stored = capped.events.map(
      (event, i) => ({ ...event, run_id: runId, seq: firstSeq + i }) as RunEvent,
    );
    for (let start = 0; start < stored.length; start += insertChunk) {
      await trx
        .insertInto("run_events")
        .values(
          stored.slice(start, start + insertChunk).map((event) => ({
            run_id: runId,
            seq: event.seq,
            type: event.type,
            ts: event.ts,
            data: JSON.stringify(event),
          })),
        )
        .execute();
    }
    let bytes = capped.state.bytes;
    const overflow = rollingOverflow(capped.state);
    if (overflow > 0)
      bytes = Math.max(0, bytes - (await dropOldestOutput({ ...ctx, db: trx }, runId, overflow)));
    await trx
      .updateTable("runs")
      .set({
        last_seq: firstSeq - 1 + stored.length,
        log_bytes: bytes,
        log_cut: capped.state.cut === null ? null : encodeJson(capped.state.cut),
        ...(recordsLimit ? { log_max_bytes: before.maxBytes, log_rolling: before.rolling ? 1 : 0 } : {}),
      })
      .where("id", "=", runId)
      .execute();
    return { duplicate: false, events: stored };
  });
}
