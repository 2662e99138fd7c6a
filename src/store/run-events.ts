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
  /** Stored only while the job is leased to this runner, else "duplicate" (the caller reads the job). */
  runnerId?: string;
}

export interface AppendEventsOptions {
  job?: JobBatchRef;
  /**
   * Stored only while this replica carries the run (`runs.replica_id`), else REPLICA_FENCED: a replica
   * presumed dead never adds events to a run another adopted.
   */
  carrier?: string;
}

/** How much of a run's output the store keeps. */
export interface RunLogLimit {
  /** Output bytes (`step.output` data, UTF-8) stored per run at most; 0 means no cap. */
  maxBytes: number;
  /** Output bytes stored before its cap was recorded (by an older runyard). */
  storedBytes: number;
  /** Past the cap delete the oldest output, not the newest (a bot's run: `bot logs` shows the latest). */
  rolling?: boolean;
}

/** What a batch of a run's events changes on the run's record (its projection). */
export interface RunRecordChange {
  /** A `run.started`: a queued run goes running, started then; any other keeps its status and start. */
  startedAt?: string;
  /** What the events set whatever the run's status: its steps, its variables, a `run.finished`'s end. */
  patch?: RunPatch;
}

export interface AppendRunEventsOptions extends AppendEventsOptions {
  /** The run's log cap, recorded by the first append that gives it; every writer honours the recorded one. */
  logLimit?: RunLogLimit;
  /** Written in the transaction that stores the batch, which writes the run's row anyway. */
  record?: RunRecordChange;
  /**
   * The run's last seq as the writer knows it: on PostgreSQL, an engine batch (no `job`) without output
   * is then one statement, no transaction, if the row still says it (and owes no cut notice).
   */
  expectedLastSeq?: number;
  /**
   * The engine's events, stored ahead of `events` in the same transaction: with `job`, the run's and
   * step's starts a runner's first batch stands for. Counted against the cap as the engine's own
   * (`capRunLog`), `events` as the runner's when `job` is given; `record` is what they change. On
   * "duplicate" nothing is stored, these neither: the caller stores them on their own.
   */
  lead?: readonly UnnumberedEvent[];
}

export interface AppendedRunEvents {
  /** True when `job.seq` was not above the job's stored `last_event_seq`: nothing was written. */
  duplicate: boolean;
  /** Stored, numbered, in seq order: the batch less output past the cap, plus the cap's notices. */
  events: RunEvent[];
  /** Each of `events` as its stored JSON text. */
  json: string[];
  /** How many of `events` (the first) are the `lead`'s, with any notice the cap added to them. */
  leading?: number;
}

/** A stored event as its stored JSON text (`events.listSerialized`). */
export interface SerializedRunEvent {
  seq: number;
  type: string;
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
  /** The `limit` newest below this seq, in seq order: a browser shows a huge log's tail, paging back. */
  before?: number;
  types?: readonly RunEvent["type"][];
}

/**
 * Rows per insert: every full chunk is the same SQL, prepared once; 5 parameters a row stays far
 * below the parameter limits (SQLite 32766, PostgreSQL 65535).
 */
const insertChunk = 100;
/**
 * Batches up to this size use a statement kept per row count; rarer larger ones are compiled each
 * time, so few statements are kept (and prepared on each PostgreSQL connection).
 */
export const preparedRowsMax = 16;
/** Events `events.appendForRun` stores in one statement on PostgreSQL at most (5 parameters each). */
export const oneStatementMax = 10_000;
function listPage(query: Pick<ListEventsQuery, "after" | "limit">): { limit: number; after: number } {
  const after = Number.isFinite(query.after) ? (query.after ?? 0) : 0;
  return { limit: pageSize(query.limit, 1000, 10_000), after };
}

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

export async function insertEvents(ctx: PreparingContext, rows: readonly EventRow[]): Promise<void> {
  for (let start = 0; start < rows.length; start += insertChunk) {
    await insertEventRows(ctx, { rows: rows.slice(start, start + insertChunk) });
  }
}

const advanceJobBatchStatement = preparedStatement(
  (ctx, v: { id: string; seq: number; now: string; runnerId: string | null }, input) =>
    ctx.db
      .updateTable("jobs")
      // Its runner's batch: the job is running (a runner's first report stands for its accept).
      .set(
        input.runnerId === null
          ? { last_event_seq: v.seq, updated_at: v.now }
          : { last_event_seq: v.seq, updated_at: v.now, status: "running" },
      )
      .where("id", "=", v.id)
      .where("last_event_seq", "<", v.seq)
      .$if(input.runnerId !== null, (update) =>
        update.where("runner_id", "=", v.runnerId ?? "").where("status", "in", ["assigned", "running"]),
      )
      .compile(),
  (input) => (input.runnerId === null ? "any runner" : "its runner"),
);

/**
 * A job's batch compare-and-set on `last_event_seq` in the caller's transaction: false (write nothing)
 * when the batch is not above it; NOT_FOUND for no such job. Not a jobs-repo verb: it must commit
 * or roll back with the events it guards.
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
   * Stores a batch in one transaction and raises `runs.last_seq`; with `job`, a batch not above the
   * job's `last_event_seq` is a duplicate and writes nothing. Events must be parsed `RunEvent`s.
   */
  append(events: readonly RunEvent[], opts?: AppendEventsOptions): Promise<AppendResult>;
  /**
   * Appends one run's events from any replica: the store numbers them and applies the log cap in one
   * transaction holding the run's row, so concurrent writers leave no gap and no seq twice. `job` as for
   * `append` (a batch sent to two replicas is stored once). NOT_FOUND for an unknown run or job;
   * REPLICA_FENCED as for `append`.
   */
  appendForRun(
    runId: string,
    events: readonly UnnumberedEvent[],
    opts?: AppendRunEventsOptions,
  ): Promise<AppendedRunEvents>;
  list(runId: string, query?: ListEventsQuery): Promise<RunEvent[]>;
  /** As `list`, unparsed: SSE streams stored text on at no cost per byte (it was checked when stored). */
  listSerialized(
    runId: string,
    query?: Pick<ListEventsQuery, "after" | "limit">,
  ): Promise<SerializedRunEvent[]>;
  /** Deletes whole oldest `step.output` events, at least `bytes` of output; answers the bytes deleted. */
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
