import { type Kysely, sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { RunEvent, UnnumberedEvent } from "../core/events.js";
import type { StoreContext } from "./dialect.js";
import {
  type AppendedRunEvents,
  type AppendRunEventsOptions,
  advanceJobBatch,
  dropOldestOutput,
  fenced,
  type JobBatchRef,
} from "./run-events.js";
import { type CutOutput, capRunLog, type RunLogState, rollingOverflow } from "./run-log-cap.js";
import { type Database, decodeJson, encodeJson, int, isoTime } from "./schema.js";

/** Rows per insert statement: every full chunk compiles to the same SQL (statement cache). */
const insertChunk = 100;
/** Events PostgreSQL stores with the run's new state in one statement at most (5 parameters each). */
const oneStatementMax = 10_000;

/** The run's row as the append reads it, locked until the transaction ends. */
interface LockedRun {
  last_seq: number | string;
  log_max_bytes: number | string | null;
  log_rolling: number;
  log_bytes: number | string;
  log_cut: string | null;
  replica_id: string | null;
}

/** What the append leaves on the run's row. */
interface RunAfter {
  last_seq: number;
  log_bytes: number;
  log_cut: string | null;
  log_max_bytes?: number;
  log_rolling?: number;
}

/**
 * One transaction:
 *
 *   update jobs set last_event_seq = $batch where id = $job and last_event_seq < $batch  -- with a job
 *     [and runner_id = $runner and status in ('assigned', 'running')]                   -- its runner's
 *   update runs set last_seq = last_seq where id = $run returning last_seq, log_*, replica_id
 *   insert into run_events ... (seqs last_seq + 1 ...)
 *   update runs set last_seq = $last, log_bytes = ..., log_cut = ... where id = $run
 *
 * The first `update runs` is there for its lock: PostgreSQL holds the run's row until commit and
 * SQLite takes its write lock before reading, so a concurrent writer waits and then reads the seq
 * this one leaves; both then write what they read, with no gap and no seq twice. The job's
 * compare-and-set comes before it so a duplicate batch does not wait for the run's row. The log
 * cap is applied in between, from the state the row holds (`capRunLog`).
 *
 * PostgreSQL sends the same work in two statements instead of four (`lockRun`, `storeNumbered`),
 * as the round trips, not the rows, are what a batch costs there.
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
    const inTrx: StoreContext = { ...ctx, db: trx };
    const run = await lockRun(inTrx, runId, job);
    if (run === "duplicate") return { duplicate: true, events: [] };
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
    const capped = capRunLog(before, events, job !== undefined);
    const firstSeq = int(run.last_seq) + 1;
    const stored = capped.events.map(
      (event, i) => ({ ...event, run_id: runId, seq: firstSeq + i }) as RunEvent,
    );
    const after: RunAfter = {
      last_seq: firstSeq - 1 + stored.length,
      log_bytes: capped.state.bytes,
      log_cut: capped.state.cut === null ? null : encodeJson(capped.state.cut),
      ...(recordsLimit ? { log_max_bytes: before.maxBytes, log_rolling: before.rolling ? 1 : 0 } : {}),
    };
    const overflow = rollingOverflow(capped.state);
    if (overflow === 0) {
      await storeNumbered(inTrx, runId, stored, after);
    } else {
      await insertEvents(trx, stored);
      const dropped = await dropOldestOutput(inTrx, runId, overflow);
      await updateRun(trx, runId, { ...after, log_bytes: Math.max(0, after.log_bytes - dropped) });
    }
    return { duplicate: false, events: stored };
  });
}

/**
 * The job's compare-and-set, then the run's row locked and read; "duplicate" when the job's
 * batch was stored before. PostgreSQL does both in one statement, locking the run only when the
 * compare-and-set took.
 */
async function lockRun(
  ctx: StoreContext,
  runId: string,
  job: JobBatchRef | undefined,
): Promise<LockedRun | "duplicate"> {
  if (ctx.dialect.name === "postgres" && job) {
    const leased =
      job.runnerId === undefined
        ? sql``
        : sql` and runner_id = ${job.runnerId} and status in ('assigned', 'running')`;
    const result = await sql<LockedRun>`/* appendRunEvents: job batch, run's row */
      with guard as (
        update jobs set last_event_seq = ${job.seq}, updated_at = ${isoTime(ctx.now())}
        where id = ${job.id} and last_event_seq < ${job.seq}${leased}
        returning id
      )
      update runs set last_seq = last_seq
      where id = ${runId} and exists (select 1 from guard)
      returning last_seq, log_max_bytes, log_rolling, log_bytes, log_cut, replica_id
    `.execute(ctx.db);
    const run = result.rows[0];
    if (run) return run;
    // No row: the run does not exist (then the transaction rolls back), or the batch was stored.
    if (!(await runExists(ctx.db, runId))) throw runNotFound(runId);
    const known = await ctx.db.selectFrom("jobs").select("id").where("id", "=", job.id).executeTakeFirst();
    if (!known) throw new RunyardError("NOT_FOUND", `no job ${job.id}`);
    return "duplicate";
  }
  if (job && !(await advanceJobBatch(ctx, job))) return "duplicate";
  const run = await ctx.db
    .updateTable("runs")
    .set({ last_seq: sql`last_seq` })
    .where("id", "=", runId)
    .returning(["last_seq", "log_max_bytes", "log_rolling", "log_bytes", "log_cut", "replica_id"])
    .executeTakeFirst();
  if (!run) throw runNotFound(runId);
  return run;
}

/** Inserts the numbered events and writes the run's new state; PostgreSQL in one statement. */
async function storeNumbered(ctx: StoreContext, runId: string, events: readonly RunEvent[], after: RunAfter) {
  if (ctx.dialect.name !== "postgres" || events.length === 0 || events.length > oneStatementMax) {
    await insertEvents(ctx.db, events);
    await updateRun(ctx.db, runId, after);
    return;
  }
  const recorded =
    after.log_max_bytes === undefined
      ? sql``
      : sql`, log_max_bytes = ${after.log_max_bytes}, log_rolling = ${after.log_rolling ?? 0}`;
  await sql`/* appendRunEvents: events, run's seq and log state */
    with ins as (
      insert into run_events (run_id, seq, type, ts, data)
      values ${sql.join(
        events.map(
          (event) =>
            sql`(${event.run_id}, ${event.seq}::bigint, ${event.type}, ${event.ts}, ${JSON.stringify(event)})`,
        ),
      )}
    )
    update runs set last_seq = ${after.last_seq}, log_bytes = ${after.log_bytes}, log_cut = ${after.log_cut}${recorded}
    where id = ${runId}
  `.execute(ctx.db);
}

/** Inserts numbered events as they are, `insertChunk` rows per statement. */
export async function insertEvents(db: Kysely<Database>, events: readonly RunEvent[]): Promise<void> {
  for (let start = 0; start < events.length; start += insertChunk) {
    await db
      .insertInto("run_events")
      .values(
        events.slice(start, start + insertChunk).map((event) => ({
          run_id: event.run_id,
          seq: event.seq,
          type: event.type,
          ts: event.ts,
          data: JSON.stringify(event),
        })),
      )
      .execute();
  }
}

async function updateRun(db: Kysely<Database>, runId: string, after: RunAfter): Promise<void> {
  await db.updateTable("runs").set(after).where("id", "=", runId).execute();
}

async function runExists(db: Kysely<Database>, runId: string): Promise<boolean> {
  return (await db.selectFrom("runs").select("id").where("id", "=", runId).executeTakeFirst()) !== undefined;
}

function runNotFound(runId: string): RunyardError {
  return new RunyardError("NOT_FOUND", `events for a run that does not exist (${runId})`);
}
