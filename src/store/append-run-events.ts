import { type RawBuilder, type Selectable, sql, type Updateable } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { RunEvent, UnnumberedEvent } from "../core/events.js";
import { recordAgentUsage } from "./agent-usage.js";
import { decodeJson, encodeJson, int, isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import { type KnownRun, knownRun, maxMisses, rememberRun } from "./known-runs.js";
import { preparedStatement } from "./prepared.js";
import {
  type AppendedRunEvents,
  type AppendRunEventsOptions,
  advanceJobBatch,
  dropOldestOutput,
  type EventRow,
  eventRow,
  eventValues,
  fenced,
  insertEvents,
  type JobBatchRef,
  jobMustExist,
  oneStatementMax,
  preparedRowsMax,
} from "./run-events.js";
import { type CutOutput, capRunLog, type RunLogState, rollingOverflow } from "./run-log-cap.js";
import { runColumns } from "./runs.js";
import type { RunsTable } from "./schema.js";

/** The run's row as the append reads it, locked until the transaction ends. */
type LockedRun = Pick<
  Selectable<RunsTable>,
  "last_seq" | "log_max_bytes" | "log_rolling" | "log_bytes" | "log_cut" | "replica_id"
>;

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
 *     [and runner_id = $runner and status in ('assigned', 'running')]                   -- its runner's,
 *                                                          which also sets status 'running' (its accept)
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
 * as the round trips, not the rows, are what a batch costs there; and where this process knows
 * the run's seq and log state (it wrote them last: `known-runs.ts`), in one statement that checks
 * them on the row and needs no transaction of its own (`appendKnown`), the usual way if not.
 */
export async function appendRunEvents(
  ctx: StoreContext,
  runId: string,
  events: readonly UnnumberedEvent[],
  opts: AppendRunEventsOptions = {},
): Promise<AppendedRunEvents> {
  const { job, carrier, logLimit } = opts;
  const lead = opts.lead ?? [];
  if (events.length === 0 && lead.length === 0 && !job) return { duplicate: false, events: [], json: [] };
  if (
    ctx.dialect.name === "postgres" &&
    opts.expectedLastSeq !== undefined &&
    !job &&
    lead.length === 0 &&
    events.length <= preparedRowsMax &&
    events.every((event) => event.type !== "step.output" && event.type !== "agent.usage")
  ) {
    const afterExpected = await appendAfter(ctx, runId, events, opts.expectedLastSeq, opts);
    if (afterExpected) {
      // A batch without output leaves the log state as it was.
      const known = knownRun(runId);
      if (known)
        rememberRun(
          runId,
          known.lastSeq === opts.expectedLastSeq
            ? { ...known, lastSeq: known.lastSeq + afterExpected.events.length }
            : undefined,
        );
      return afterExpected;
    }
  }
  const known = ctx.dialect.name === "postgres" ? knownRun(runId) : undefined;
  let misses = 0;
  if (known && (known.misses ?? 0) < maxMisses) {
    const inOne = await appendKnown(ctx, runId, events, opts, known);
    if (inOne !== undefined && inOne !== notTried) return inOne;
    // Kept unless the usual way stores the batch: a duplicate or a refusal left the row as it was.
    // A batch this way does not take says nothing of who moves the run: no miss.
    misses = (known.misses ?? 0) + (inOne === notTried ? 0 : 1);
  } else if (known) misses = maxMisses;
  let nowKnown: KnownRun | undefined;
  const appended = await ctx.db.transaction().execute(async (trx) => {
    const inTrx: StoreContext = { ...ctx, db: trx };
    const run = await lockRun(inTrx, runId, job);
    if (run === "duplicate") return { duplicate: true, events: [], json: [] };
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
    const engine = capRunLog(before, lead);
    const runner = capRunLog(engine.state, events, job !== undefined);
    const capped = { events: [...engine.events, ...runner.events], state: runner.state };
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
    const row: RunRowUpdate = {
      runId,
      after,
      columns: opts.record?.patch ? runColumns(ctx, opts.record.patch) : {},
      startedAt: opts.record?.startedAt ?? null,
    };
    const rows = stored.map(eventRow);
    const overflow = rollingOverflow(capped.state);
    if (overflow === 0) {
      await storeNumbered(inTrx, rows, row);
      const capRecorded = run.log_max_bytes !== null || recordsLimit;
      if (ctx.dialect.name === "postgres" && capped.state.cut === null && capRecorded)
        nowKnown = {
          lastSeq: after.last_seq,
          logBytes: capped.state.bytes,
          maxBytes: before.maxBytes,
          rolling: before.rolling,
          ...(misses > 0 ? { misses } : {}),
        };
    } else {
      await insertEvents(inTrx, rows);
      const dropped = await dropOldestOutput(inTrx, runId, overflow);
      await updateRun(inTrx, {
        ...row,
        after: { ...after, log_bytes: Math.max(0, after.log_bytes - dropped) },
      });
    }
    await recordAgentUsage(inTrx, runId, stored);
    return {
      duplicate: false,
      events: stored,
      json: rows.map((inserted) => inserted.data),
      ...(lead.length > 0 ? { leading: engine.events.length } : {}),
    };
  });
  // Committed: what the row holds now, for the next batch's one statement (or forgotten).
  if (ctx.dialect.name === "postgres" && !appended.duplicate) rememberRun(runId, nowKnown);
  return appended;
}

/** PostgreSQL: the job's compare-and-set, and the run's row locked only if it took. */
const lockRunForJobBatch = preparedStatement(
  (ctx, v: { jobId: string; seq: number; now: string; runnerId: string | null; runId: string }, input) => {
    const leased =
      input.runnerId === null
        ? sql``
        : sql` and runner_id = ${v.runnerId} and status in ('assigned', 'running')`;
    return sql<LockedRun>`/* appendRunEvents: job batch, run's row */
      with guard as (
        update jobs set last_event_seq = ${v.seq}, updated_at = ${v.now}${input.runnerId === null ? sql`` : sql`, status = 'running'`}
        where id = ${v.jobId} and last_event_seq < ${v.seq}${leased}
        returning id
      )
      update runs set last_seq = last_seq
      where id = ${v.runId} and exists (select 1 from guard)
      returning last_seq, log_max_bytes, log_rolling, log_bytes, log_cut, replica_id
    `.compile(ctx.db);
  },
  (input) => (input.runnerId === null ? "any runner" : "its runner"),
);

/** The run's row, locked until the transaction ends (see `appendRunEvents`). */
const lockRunRow = preparedStatement((ctx, v: { runId: string }) =>
  ctx.db
    .updateTable("runs")
    .set({ last_seq: sql`last_seq` })
    .where("id", "=", v.runId)
    .returning(["last_seq", "log_max_bytes", "log_rolling", "log_bytes", "log_cut", "replica_id"])
    .compile(),
);

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
    const result = await lockRunForJobBatch(ctx, {
      jobId: job.id,
      seq: job.seq,
      now: isoTime(ctx.now()),
      runnerId: job.runnerId ?? null,
      runId,
    });
    const run = result.rows[0];
    if (run) return run;
    // No row: the run does not exist (then the transaction rolls back), or the batch was stored.
    const known = await ctx.db.selectFrom("runs").select("id").where("id", "=", runId).executeTakeFirst();
    if (!known) throw runNotFound(runId);
    await jobMustExist(ctx.db, job.id);
    return "duplicate";
  }
  if (job && !(await advanceJobBatch(ctx, job))) return "duplicate";
  const run = (await lockRunRow(ctx, { runId })).rows[0];
  if (!run) throw runNotFound(runId);
  return run;
}

/** The run's row as an append leaves it. */
interface RunRowUpdate {
  runId: string;
  /** Its seq and log state; only its seq when the batch leaves the log state as it is. */
  after: Pick<RunAfter, "last_seq"> & Partial<RunAfter>;
  /** What the batch changes on the run's record (`RunRecordChange`), as columns. */
  columns: Updateable<RunsTable>;
  /** A `run.started`'s time: the run starts, if it is still queued. */
  startedAt: string | null;
}

/** The `set` list of the run's row: its seq and log state, then what the batch changes on its record. */
function runRowAssignments(v: RunRowUpdate, input: RunRowUpdate): RawBuilder<unknown> {
  const set = Object.entries({ ...v.after, ...v.columns })
    .filter(([, value]) => value !== undefined)
    .map(([column, value]) => sql`${sql.ref(column)} = ${value}`);
  if (input.startedAt !== null) {
    // Evaluated on the row as it was: a run that started before, or ended, keeps its status and start.
    if (input.columns.status === undefined)
      set.push(sql`status = case when status = 'queued' then 'running' else status end`);
    set.push(sql`started_at = case when status = 'queued' then ${v.startedAt} else started_at end`);
  }
  return sql.join(set);
}

const startedShape = (input: RunRowUpdate): string => (input.startedAt === null ? "" : "started");

/**
 * PostgreSQL, a batch of the engine's without output: stored in one statement, numbered after
 * `expected`, if the run's row still says that seq, owes no notice of cut output (a batch without
 * output then leaves its log state as it is), has its cap recorded and is carried by `carrier`.
 * Undefined when it does not (nothing is written): the caller appends as usual, which then also
 * says why (REPLICA_FENCED, NOT_FOUND).
 */
async function appendAfter(
  ctx: StoreContext,
  runId: string,
  events: readonly UnnumberedEvent[],
  expected: number,
  opts: AppendRunEventsOptions,
): Promise<AppendedRunEvents | undefined> {
  const stored = events.map((event, i) => ({ ...event, run_id: runId, seq: expected + 1 + i }) as RunEvent);
  const rows = stored.map(eventRow);
  const { rows: inserted } = await insertAfterExpected(ctx, {
    runId,
    after: { last_seq: expected + stored.length },
    columns: opts.record?.patch ? runColumns(ctx, opts.record.patch) : {},
    startedAt: opts.record?.startedAt ?? null,
    rows,
    expected,
    carrier: opts.carrier ?? null,
  });
  if (inserted.length !== rows.length) return undefined;
  return { duplicate: false, events: stored, json: rows.map((row) => row.data) };
}

const insertAfterExpected = preparedStatement(
  (ctx, v: RunRowUpdate & { rows: EventRow[]; expected: number; carrier: string | null }, input) =>
    sql`/* appendRunEvents: a batch after the seq its writer knows */
      with run as (
        update runs set ${runRowAssignments(v, input)}
        where id = ${v.runId} and last_seq = ${v.expected} and log_cut is null and log_max_bytes is not null
          ${input.carrier === null ? sql`` : sql`and replica_id = ${v.carrier}`}
        returning id
      )
      insert into run_events (run_id, seq, type, ts, data)
      select e.run_id, e.seq, e.type, e.ts, e.data
      from run, (values ${eventValues(v.rows)}) as e(run_id, seq, type, ts, data)
      returning 1
    `.compile(ctx.db),
  (input) => `${startedShape(input)}|${input.carrier === null ? "" : "carried"}`,
);

/** What `appendKnown` answers for a batch it sends no statement for (see there). */
const notTried = Symbol("not tried");

/**
 * PostgreSQL: the batch numbered after the run's `known` seq and capped from its known log state,
 * stored in one statement that takes effect only if the row still holds that state (and the run's
 * carrier is `carrier`, and the job's compare-and-set takes): the work of `appendRunEvents`'
 * transaction in one round trip instead of four. Undefined when it did not take, nothing
 * written: another writer's batch meanwhile, a duplicate, a fenced replica; `notTried`, no
 * statement sent, for a batch this way does not take (agent usage to record, a rolling log to
 * trim, nothing left after the cap): the caller goes the usual way, which says why.
 */
async function appendKnown(
  ctx: StoreContext,
  runId: string,
  events: readonly UnnumberedEvent[],
  opts: AppendRunEventsOptions,
  known: KnownRun,
): Promise<AppendedRunEvents | typeof notTried | undefined> {
  const { job } = opts;
  const lead = opts.lead ?? [];
  const before: RunLogState = {
    maxBytes: known.maxBytes,
    rolling: known.rolling,
    bytes: known.logBytes,
    cut: null,
  };
  const engine = capRunLog(before, lead);
  const runner = capRunLog(engine.state, events, job !== undefined);
  const capped = [...engine.events, ...runner.events];
  const { state } = runner;
  if (capped.length === 0 || capped.length > oneStatementMax || rollingOverflow(state) !== 0) return notTried;
  const stored = capped.map(
    (event, i) => ({ ...event, run_id: runId, seq: known.lastSeq + 1 + i }) as RunEvent,
  );
  if (stored.some((event) => event.type === "agent.usage")) return notTried;
  const rows = stored.map(eventRow);
  const lastSeq = known.lastSeq + stored.length;
  const { rows: inserted } = await insertKnown(ctx, {
    runId,
    after: {
      last_seq: lastSeq,
      log_bytes: state.bytes,
      log_cut: state.cut === null ? null : encodeJson(state.cut),
    },
    columns: opts.record?.patch ? runColumns(ctx, opts.record.patch) : {},
    startedAt: opts.record?.startedAt ?? null,
    rows,
    known: {
      lastSeq: known.lastSeq,
      logBytes: known.logBytes,
      maxBytes: known.maxBytes,
      rolling: known.rolling ? 1 : 0,
    },
    carrier: opts.carrier ?? null,
    job: job ? { id: job.id, seq: job.seq, runnerId: job.runnerId ?? null, now: isoTime(ctx.now()) } : null,
  });
  if (inserted.length !== rows.length) return undefined;
  rememberRun(
    runId,
    state.cut === null ? { ...known, lastSeq, logBytes: state.bytes, misses: 0 } : undefined,
  );
  return {
    duplicate: false,
    events: stored,
    json: rows.map((row) => row.data),
    ...(lead.length > 0 ? { leading: engine.events.length } : {}),
  };
}

interface KnownInsert extends RunRowUpdate {
  rows: EventRow[];
  known: { lastSeq: number; logBytes: number; maxBytes: number; rolling: number };
  carrier: string | null;
  job: { id: string; seq: number; runnerId: string | null; now: string } | null;
}

/**
 * The job's row locked (`job_row`), then the run's row checked and locked (`known`), the job's
 * compare-and-set only if it holds, the row written only if that took, the events inserted only
 * if the row was: each step reads the last's `returning`, so a check that fails writes nothing at
 * all. The job's row comes first as in the usual way (`lockRunForJobBatch`): in the other order a
 * batch here and one of the same job stored the usual way meanwhile each held the row the other
 * waited for, and PostgreSQL ended one as a deadlock.
 */
const insertKnown = preparedStatement(
  (ctx, v: KnownInsert, input) => {
    const job =
      v.job === null || input.job === null ? null : { ...v.job, leased: input.job.runnerId !== null };
    const jobFirst =
      job === null
        ? { lock: sql``, held: sql``, guard: sql`` }
        : {
            lock: sql`job_row as materialized (select id from jobs where id = ${job.id} for update), `,
            held: sql`and exists (select 1 from job_row)`,
            guard: sql`, guard as (
        update jobs set last_event_seq = ${job.seq}, updated_at = ${job.now}${job.leased ? sql`, status = 'running'` : sql``}
        where id = ${job.id} and last_event_seq < ${job.seq}
          ${job.leased ? sql`and runner_id = ${job.runnerId} and status in ('assigned', 'running')` : sql``}
          and exists (select 1 from known)
        returning id
      )`,
          };
    return sql`/* appendRunEvents: a batch on the run's known state */
      with ${jobFirst.lock}known as (
        select id from runs
        where id = ${v.runId} and last_seq = ${v.known.lastSeq} and log_bytes = ${v.known.logBytes}
          and log_cut is null and log_max_bytes = ${v.known.maxBytes} and log_rolling = ${v.known.rolling}
          ${input.carrier === null ? sql`` : sql`and replica_id = ${v.carrier}`}
          ${jobFirst.held}
        for update
      )${jobFirst.guard}, run as (
        update runs set ${runRowAssignments(v, input)}
        where id in (select id from known) ${input.job === null ? sql`` : sql`and exists (select 1 from guard)`}
        returning id
      )
      insert into run_events (run_id, seq, type, ts, data)
      select e.run_id, e.seq, e.type, e.ts, e.data
      from run, (values ${eventValues(v.rows)}) as e(run_id, seq, type, ts, data)
      returning 1
    `.compile(ctx.db);
  },
  (input) =>
    input.rows.length <= preparedRowsMax
      ? [
          startedShape(input),
          input.carrier === null ? "" : "carried",
          input.job === null ? "" : input.job.runnerId === null ? "any runner" : "its runner",
        ].join("|")
      : undefined,
);

/** PostgreSQL: the events' insert and the run's new state, one statement. */
const insertAndUpdateRun = preparedStatement(
  (ctx, v: RunRowUpdate & { rows: EventRow[] }, input) =>
    sql`/* appendRunEvents: events, run's seq, log state and record */
      with ins as (
        insert into run_events (run_id, seq, type, ts, data)
        values ${eventValues(v.rows)}
      )
      update runs set ${runRowAssignments(v, input)}
      where id = ${v.runId}
    `.compile(ctx.db),
  (input) => (input.rows.length <= preparedRowsMax ? startedShape(input) : undefined),
);

/** Inserts the numbered events and writes the run's new state; PostgreSQL in one statement. */
async function storeNumbered(ctx: StoreContext, rows: EventRow[], row: RunRowUpdate) {
  if (ctx.dialect.name !== "postgres" || rows.length === 0 || rows.length > oneStatementMax) {
    await insertEvents(ctx, rows);
    await updateRun(ctx, row);
    return;
  }
  await insertAndUpdateRun(ctx, { ...row, rows });
}

const updateRun = preparedStatement(
  (ctx, v: RunRowUpdate, input) =>
    sql`update runs set ${runRowAssignments(v, input)} where id = ${v.runId}`.compile(ctx.db),
  startedShape,
);

function runNotFound(runId: string): RunyardError {
  return new RunyardError("NOT_FOUND", `events for a run that does not exist (${runId})`);
}
