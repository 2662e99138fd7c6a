import { type Kysely, type RawBuilder, sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import { RunEvent, type UnnumberedEvent } from "../core/events.js";
import { int, isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import { pageSize } from "./paging.js";
import { type PreparingContext, preparedStatement } from "./prepared.js";
import type { RunPatch } from "./run-records.js";
import type { Database, RunEventsTable } from "./schema.js";

/** Ties a batch of events to the job that produced it, so a re-sent batch is stored once. */
export interface JobBatchRef {
  id: string;
  /** The producer's batch number for this job, increasing from 1 (e.g. the batch's highest event seq). */
  seq: number;
  /**
   * When set, the batch is stored only while the job is leased to this runner (assigned or
   * running); otherwise it counts as "duplicate" and the caller reads the job to tell which.
   */
  runnerId?: string;
}

/** Options of `events.append`. */
export interface AppendEventsOptions {
  job?: JobBatchRef;
  /**
   * The replica that numbered the events: they are stored only while the run is carried by it
   * (`runs.replica_id`), else nothing is written and REPLICA_FENCED is thrown. A replica the
   * fleet presumed dead can thus never add events to a run another replica adopted.
   */
  carrier?: string;
}

/** How much of a run's output the store keeps. */
export interface RunLogLimit {
  /** Output bytes (`step.output` data, UTF-8) stored per run at most; 0 means no cap. */
  maxBytes: number;
  /** Output bytes the run stored before its cap was recorded (a run stored by an older runyard). */
  storedBytes: number;
  /**
   * Keep the newest output instead of the first (a bot's run, which lasts its whole life and
   * whose latest lines are what `bot logs` is for): past the cap the oldest output is deleted.
   */
  rolling?: boolean;
}

/** What a batch of a run's events changes on the run's record (its projection). */
export interface RunRecordChange {
  /**
   * A `run.started`: the run goes from queued to running, started then. A run no longer queued
   * (it started before, or ended) keeps its status and its start.
   */
  startedAt?: string;
  /** What the events set whatever the run's status: its steps, its variables, a `run.finished`'s end. */
  patch?: RunPatch;
}

/** Options of `events.appendForRun`. */
export interface AppendRunEventsOptions extends AppendEventsOptions {
  /**
   * The run's log cap, recorded on the run by the first append that gives it (the replica
   * carrying the run gives it); later ones ignore it, and any writer honours the recorded one.
   */
  logLimit?: RunLogLimit;
  /**
   * What the batch changes on the run's record, written in the transaction that stores it (the
   * run's row is written there anyway), rather than by statements of its own after it.
   */
  record?: RunRecordChange;
  /**
   * The run's last seq as the writer knows it. On PostgreSQL, a batch of the engine's (no `job`)
   * without output is then stored by one statement, with no transaction round trips, if the run's
   * row still says that seq (and owes no notice of cut output); otherwise it is appended as usual.
   */
  expectedLastSeq?: number;
}

/** What `events.appendForRun` did. */
export interface AppendedRunEvents {
  /** True when `job.seq` was not above the job's stored `last_event_seq`: nothing was written. */
  duplicate: boolean;
  /**
   * The events stored, numbered, in seq order: the batch's, less output past the log cap, plus
   * the cap's notices where a step whose output was cut finished.
   */
  events: RunEvent[];
  /** Each of `events` as the JSON text it was stored as, in the same order. */
  json: string[];
}

/** A stored event as the JSON text it is stored as (`events.listSerialized`). */
export interface SerializedRunEvent {
  seq: number;
  /** The event's `type`. */
  type: string;
  /** The event, as `JSON.stringify` gave it when it was stored. */
  json: string;
}

/** What `events.append` did. Either way, once it returns, every event of the batch is stored. */
export interface AppendResult {
  /** True when `job.seq` was not above the job's stored `last_event_seq`: nothing was written. */
  duplicate: boolean;
  /** Events actually inserted; an event whose `(run_id, seq)` is stored already is skipped. */
  inserted: number;
}

/** Which events `events.list` returns, ascending by seq. */
export interface ListEventsQuery {
  /** Only events with a seq above this (SSE `Last-Event-ID`, `?after=`). Default 0. */
  after?: number;
  /** Default 1000, at most 10000; page with `after` set to the last seq received. */
  limit?: number;
  /**
   * Only events with a seq below this: the `limit` newest of them, still in seq order. A browser
   * shows a huge log's tail first and pages back with `before` set to the first seq it has.
   */
  before?: number;
  /** Only events of these types. */
  types?: readonly RunEvent["type"][];
}

/**
 * Rows per insert statement. Every full chunk compiles to the same SQL, so the SQLite
 * backend's statement cache prepares it once; 5 parameters a row stays far below the
 * parameter limits (SQLite 32766, PostgreSQL 65535).
 */
const insertChunk = 100;
/**
 * Batches of at most this many events are stored by statements compiled once per row count
 * (`prepared.ts`); a larger one, rarer, is compiled for itself, so that the kept statements (and
 * PostgreSQL's prepared ones on each connection) stay few.
 */
export const preparedRowsMax = 16;
/** Events `events.appendForRun` stores in one statement on PostgreSQL at most (5 parameters each). */
export const oneStatementMax = 10_000;
/** A list's `limit` (default 1000, at most 10000) and `after` (default 0), whatever was asked. */
function listPage(query: Pick<ListEventsQuery, "after" | "limit">): { limit: number; after: number } {
  const after = Number.isFinite(query.after) ? (query.after ?? 0) : 0;
  return { limit: pageSize(query.limit, 1000, 10_000), after };
}

/** A stored event's row. */
export type EventRow = Omit<RunEventsTable, "seq"> & { seq: number };

export function eventRow(event: RunEvent): EventRow {
  const { run_id, seq, type, ts } = event;
  return { run_id, seq, type, ts, data: JSON.stringify(event) };
}

/** PostgreSQL: the rows as a `values` list, `seq` cast as the column is. */
export function eventValues(rows: readonly EventRow[]): RawBuilder<unknown> {
  return sql.join(
    rows.map((row) => sql`(${row.run_id}, ${row.seq}::bigint, ${row.type}, ${row.ts}, ${row.data})`),
  );
}

const insertEventRows = preparedStatement(
  (ctx, v: { rows: EventRow[] }) => ctx.db.insertInto("run_events").values(v.rows).compile(),
  (input) => (input.rows.length <= preparedRowsMax || input.rows.length === insertChunk ? "" : undefined),
);

/** Inserts the rows of numbered events as they are, `insertChunk` rows per statement. */
export async function insertEvents(ctx: PreparingContext, rows: readonly EventRow[]): Promise<void> {
  for (let start = 0; start < rows.length; start += insertChunk) {
    await insertEventRows(ctx, { rows: rows.slice(start, start + insertChunk) });
  }
}

const advanceJobBatchStatement = preparedStatement(
  (ctx, v: { id: string; seq: number; now: string; runnerId: string | null }, input) =>
    ctx.db
      .updateTable("jobs")
      .set({ last_event_seq: v.seq, updated_at: v.now })
      .where("id", "=", v.id)
      .where("last_event_seq", "<", v.seq)
      .$if(input.runnerId !== null, (update) =>
        update.where("runner_id", "=", v.runnerId ?? "").where("status", "in", ["assigned", "running"]),
      )
      .compile(),
  (input) => (input.runnerId === null ? "any runner" : "its runner"),
);

/**
 * A job's batch compare-and-set, inside the caller's transaction: raises `last_event_seq` to the
 * batch's number; false when the batch is not above it (sent before, or it lost the race), and
 * then nothing of the batch may be written. NOT_FOUND for a job that does not exist.
 * Not a jobs-repo verb the queue calls: it must commit or roll back with the events it guards.
 */
export async function advanceJobBatch(ctx: StoreContext, job: JobBatchRef): Promise<boolean> {
  const advanced = await advanceJobBatchStatement(ctx, {
    id: job.id,
    seq: job.seq,
    now: isoTime(ctx.now()),
    runnerId: job.runnerId ?? null,
  });
  if ((advanced.numAffectedRows ?? 0n) > 0n) return true;
  await jobMustExist(ctx.db, job.id);
  return false;
}

/** NOT_FOUND for a job that does not exist. */
export async function jobMustExist(db: Kysely<Database>, id: string): Promise<void> {
  const known = await db.selectFrom("jobs").select("id").where("id", "=", id).executeTakeFirst();
  if (!known) throw new RunyardError("NOT_FOUND", `no job ${id}`);
}

export function fenced(runId: string, replicaId: string): RunyardError {
  return new RunyardError(
    "REPLICA_FENCED",
    `run ${runId} is no longer carried by replica ${replicaId}: its events were not stored`,
  );
}

/** A page of a run's events, by seq. */
type EventsPage = { runId: string; after: number; limit: number };

const selectEvents = preparedStatement(
  (ctx, v: EventsPage & { types: readonly string[] | null; before: number | null }, input) => {
    const select = ctx.db
      .selectFrom("run_events")
      .select(["seq", "data"])
      .where("run_id", "=", v.runId)
      .where("seq", ">", v.after)
      .$if(input.types !== null, (q) => q.where("type", "in", v.types ?? []));
    // With `before`, the newest page below it: read backwards from it (then put in seq order).
    return input.before === null
      ? select.orderBy("seq").limit(v.limit).compile()
      : select
          .where("seq", "<", v.before ?? 0)
          .orderBy("seq", "desc")
          .limit(v.limit)
          .compile();
  },
  (input) => `${input.types === null ? "all" : "types"}|${input.before === null ? "first" : "before"}`,
);

const selectSerialized = preparedStatement((ctx, v: EventsPage) =>
  ctx.db
    .selectFrom("run_events")
    .select(["seq", "type", "data"])
    .where("run_id", "=", v.runId)
    .where("seq", ">", v.after)
    .orderBy("seq")
    .limit(v.limit)
    .compile(),
);

const selectLastSeq = preparedStatement((ctx, v: { runId: string }) =>
  ctx.db.selectFrom("runs").select("last_seq").where("id", "=", v.runId).compile(),
);

export async function dropOldestOutput(ctx: StoreContext, runId: string, bytes: number): Promise<number> {
  let dropped = 0;
  let upTo = 0;
  let after = 0;
  while (dropped < bytes) {
    const rows = await ctx.db
      .selectFrom("run_events")
      .select(["seq", "data"])
      .where("run_id", "=", runId)
      .where("type", "=", "step.output")
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(1000)
      .execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      const event = JSON.parse(row.data) as { data?: string };
      dropped += Buffer.byteLength(event.data ?? "", "utf8");
      upTo = int(row.seq);
      if (dropped >= bytes) break;
    }
    after = upTo;
  }
  if (upTo > 0) {
    await ctx.db
      .deleteFrom("run_events")
      .where("run_id", "=", runId)
      .where("type", "=", "step.output")
      .where("seq", "<=", upTo)
      .execute();
  }
  return dropped;
}

/** Each run's event log, ascending by seq. */
export interface RunEventsRepo {
  /**
   * Stores a batch of events in one transaction and raises `runs.last_seq`. With `job`, the
   * job's `last_event_seq` is raised to `job.seq` in the same transaction, and a batch whose
   * `job.seq` is not above it is a duplicate and writes nothing: a re-sent batch is stored once.
   * An event whose `(run_id, seq)` is stored already is skipped, never stored twice.
   * Events must be valid `RunEvent`s (the server parses what runners send before this).
   */
  append(events: readonly RunEvent[], opts?: AppendEventsOptions): Promise<AppendResult>;
  /**
   * Appends a batch of one run's events from any replica, concurrently with any other: the store
   * gives the seqs (the run's next ones, dense, in the batch's order) and applies the run's log
   * cap, all in one transaction that holds the run's row, so concurrent writers take turns and
   * the run's log has no gap and no seq twice. With `job`, a batch whose `job.seq` is not above
   * the job's `last_event_seq` is a duplicate and writes nothing (a batch sent to two replicas
   * is stored once). NOT_FOUND for an unknown run or job; REPLICA_FENCED as for `append`.
   */
  appendForRun(
    runId: string,
    events: readonly UnnumberedEvent[],
    opts?: AppendRunEventsOptions,
  ): Promise<AppendedRunEvents>;
  /** A run's events ascending by seq, parsed with the `RunEvent` schema. */
  list(runId: string, query?: ListEventsQuery): Promise<RunEvent[]>;
  /**
   * As `list` with `after` and `limit`, each event as its stored JSON text, not parsed: what streams
   * them on unchanged (SSE) reads them so, at no cost per byte (they were checked when stored).
   */
  listSerialized(
    runId: string,
    query?: Pick<ListEventsQuery, "after" | "limit">,
  ): Promise<SerializedRunEvent[]>;
  /**
   * Deletes a run's oldest `step.output` events, at least `bytes` of their output text (whole
   * events); answers the output bytes deleted. A bot's rolling log keeps its newest lines so.
   */
  dropOldestOutput(runId: string, bytes: number): Promise<number>;
  /** The highest stored event seq of a run (0 before any), or undefined for an unknown run. */
  lastSeq(runId: string): Promise<number | undefined>;
}

/** The repo but `appendForRun`, which append-run-events.ts adds (it builds on this module). */
export function runEventsRepo(ctx: StoreContext): Omit<RunEventsRepo, "appendForRun"> {
  return {
    async append(events, opts = {}) {
      const { job } = opts;
      if (events.length === 0 && !job) return { duplicate: false, inserted: 0 };
      try {
        return await ctx.db.transaction().execute(async (trx) => {
          if (opts.carrier !== undefined) {
            const runId = events[0]?.run_id;
            const carried = runId
              ? await trx
                  .selectFrom("runs")
                  .select("id")
                  .where("id", "=", runId)
                  .where("replica_id", "=", opts.carrier)
                  .executeTakeFirst()
              : { id: "" };
            if (!carried) throw fenced(runId ?? "", opts.carrier);
          }
          // The compare-and-set comes first: it takes the write lock before anything is read.
          if (job && !(await advanceJobBatch({ ...ctx, db: trx }, job)))
            return { duplicate: true, inserted: 0 };
          let inserted = 0;
          for (let start = 0; start < events.length; start += insertChunk) {
            const result = await trx
              .insertInto("run_events")
              .values(events.slice(start, start + insertChunk).map(eventRow))
              .onConflict((conflict) => conflict.columns(["run_id", "seq"]).doNothing())
              .executeTakeFirst();
            inserted += Number(result.numInsertedOrUpdatedRows ?? 0n);
          }
          const lastSeqs = new Map<string, number>();
          for (const event of events)
            lastSeqs.set(event.run_id, Math.max(event.seq, lastSeqs.get(event.run_id) ?? 0));
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
    },
    async list(runId, query = {}) {
      const { limit, after } = listPage(query);
      const before = Number.isFinite(query.before) ? (query.before ?? null) : null;
      const types = query.types !== undefined && query.types.length > 0 ? query.types : null;
      const { rows } = await selectEvents(ctx, { runId, after, limit, types, before });
      if (before !== null) rows.reverse();
      return rows.map((row) => {
        const parsed = RunEvent.safeParse(JSON.parse(row.data));
        if (!parsed.success) {
          throw new RunyardError(
            "INTERNAL",
            `stored event ${runId}#${int(row.seq)} does not match the event schema`,
            { details: parsed.error.issues },
          );
        }
        return parsed.data;
      });
    },
    async listSerialized(runId, query = {}) {
      const { rows } = await selectSerialized(ctx, { runId, ...listPage(query) });
      return rows.map((row) => ({ seq: int(row.seq), type: row.type, json: row.data }));
    },
    dropOldestOutput: (runId, bytes) => dropOldestOutput(ctx, runId, bytes),
    async lastSeq(runId) {
      const row = (await selectLastSeq(ctx, { runId })).rows[0];
      return row && int(row.last_seq);
    },
  };
}
