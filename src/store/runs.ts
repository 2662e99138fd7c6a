import { type Insertable, type Selectable, sql, type Updateable } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { ErrorInfo, RunEvent, RunStatus, StepSummary, UnnumberedEvent } from "../core/events.js";
import { newRunId } from "../core/ids.js";
import { decodeJson, encodeJson, int, isoTime, isoTimeOrNull } from "./columns.js";
import { type StoreContext, writeUnique } from "./dialect.js";
import { rememberRun } from "./known-runs.js";
import { newestFirstPage } from "./paging.js";
import { type PreparingContext, preparedStatement } from "./prepared.js";
import { type EventRow, eventRow, insertEvents, type RunLogLimit } from "./run-events.js";
import type {
  ActiveRunCount,
  ActiveRunsQuery,
  ListRunsQuery,
  NewRun,
  RunCount,
  RunPage,
  RunPatch,
  RunRecord,
  RunState,
} from "./run-records.js";
import type { RunsTable } from "./schema.js";
import type { IfStatus } from "./types.js";

const pagedRuns = { table: "runs", time: "created_at", noun: "run" } as const;

export function toRunRecord(ctx: StoreContext, row: Selectable<RunsTable>): RunRecord {
  const { replica_id, cancel_requested_at, log_max_bytes, log_rolling, log_bytes, log_cut, ...record } = row;
  return {
    ...record,
    spec: decodeJson(ctx.cipher.open(row.spec)),
    vars: decodeJson<Record<string, string>>(ctx.cipher.open(row.vars)),
    steps: decodeJson<StepSummary[]>(row.steps),
    error: row.error === null ? null : decodeJson<ErrorInfo>(row.error),
    last_seq: int(row.last_seq),
    saved_version: row.saved_version === null ? null : int(row.saved_version),
    rolled_back: int(row.rolled_back) === 1,
  };
}

/** PostgreSQL: the run's row and its first event in one statement. */
const insertRunWithEvent = preparedStatement((ctx, v: { row: Insertable<RunsTable>; event: EventRow }) => {
  const columns = Object.entries(v.row).filter(([, value]) => value !== undefined);
  return sql`/* runs.createWithEvent */
      with run as (
        insert into runs (${sql.join(columns.map(([column]) => sql.ref(column)))})
        values (${sql.join(columns.map(([, value]) => value))})
        returning id
      )
      insert into run_events (run_id, seq, type, ts, data)
      select id, ${v.event.seq}, ${v.event.type}, ${v.event.ts}, ${v.event.data} from run
    `.compile(ctx.db);
});

/** A new run's record and its row (with `log`: the log state it starts with). */
function newRun(
  ctx: StoreContext,
  input: NewRun,
  log?: { last_seq: number; log_max_bytes: number; log_rolling: number; log_bytes: number },
): { record: RunRecord; row: Insertable<RunsTable> } {
  const record: RunRecord = {
    id: input.id ?? newRunId(),
    kind: input.kind,
    name: input.name,
    status: input.status ?? "queued",
    tenant_id: input.tenant_id ?? null,
    created_by: input.created_by ?? null,
    created_by_user: input.created_by_user ?? null,
    authored_by: input.authored_by !== undefined ? input.authored_by : (input.created_by ?? null),
    spec: input.spec ?? null,
    vars: input.vars ?? {},
    steps: [],
    error: null,
    created_at: isoTime(input.created_at ?? ctx.now()),
    started_at: null,
    finished_at: null,
    last_seq: 0,
    last_notify_error: null,
    concurrency_group: input.concurrency_group ?? null,
    trigger: input.trigger ?? "api",
    trigger_ref: input.trigger_ref ?? null,
    saved_workflow: input.saved_workflow ?? null,
    saved_version: input.saved_version ?? null,
    rolled_back: false,
    rollback_failed: null,
    retry_of: input.retry_of ?? null,
    retry_from: input.retry_from ?? null,
    parent_run_id: input.parent_run_id ?? null,
    parent_step: input.parent_step ?? null,
  };
  const row = {
    ...record,
    spec: ctx.cipher.seal(encodeJson(record.spec)),
    vars: ctx.cipher.seal(encodeJson(record.vars)),
    steps: encodeJson(record.steps),
    error: null,
    rolled_back: 0,
    replica_id: input.replica_id ?? null,
    ...log,
  };
  return { record, row };
}

/** Stores a new run; one whose id is taken already is a CONFLICT. */
function storingNew(ctx: StoreContext, id: string, insert: () => Promise<unknown>): Promise<unknown> {
  return writeUnique(
    ctx,
    insert,
    (cause) =>
      new RunyardError("CONFLICT", `run ${id} exists already`, {
        hint: "Give a new run id, or none to get a generated one.",
        cause,
      }),
  );
}

const insertRun = preparedStatement((ctx, row: Insertable<RunsTable>) =>
  ctx.db.insertInto("runs").values(row).compile(),
);

/** A run's columns as `patch` sets them (what may hold secrets sealed). */
export function runColumns(ctx: Pick<StoreContext, "cipher">, patch: RunPatch): Updateable<RunsTable> {
  const set: Updateable<RunsTable> = {};
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.status !== undefined) set.status = patch.status;
  if (patch.started_at !== undefined) set.started_at = isoTimeOrNull(patch.started_at);
  if (patch.finished_at !== undefined) set.finished_at = isoTimeOrNull(patch.finished_at);
  if (patch.vars !== undefined) set.vars = ctx.cipher.seal(encodeJson(patch.vars));
  if (patch.steps !== undefined) set.steps = encodeJson(patch.steps);
  if (patch.error !== undefined) set.error = patch.error === null ? null : encodeJson(patch.error);
  if (patch.last_notify_error !== undefined) set.last_notify_error = patch.last_notify_error;
  if (patch.rolled_back !== undefined) set.rolled_back = patch.rolled_back ? 1 : 0;
  if (patch.rollback_failed !== undefined) set.rollback_failed = patch.rollback_failed;
  return set;
}

/** What `update` and `patch` run: the columns set, and the statuses the run must be in (null: any). */
interface RunUpdate {
  id: string;
  set: Updateable<RunsTable>;
  ifStatus: readonly RunStatus[] | null;
}

const runUpdate = (ctx: PreparingContext, v: RunUpdate, input: RunUpdate) =>
  ctx.db
    .updateTable("runs")
    .set(v.set)
    .where("id", "=", v.id)
    .$if(input.ifStatus !== null, (update) => update.where("status", "in", v.ifStatus ?? []));

const updateReturning = preparedStatement((ctx, v: RunUpdate, input: RunUpdate) =>
  runUpdate(ctx, v, input).returningAll().compile(),
);

const updateOnly = preparedStatement((ctx, v: RunUpdate, input: RunUpdate) =>
  runUpdate(ctx, v, input).compile(),
);

const selectRunState = preparedStatement((ctx, v: { id: string }) =>
  ctx.db
    .selectFrom("runs")
    .select(["id", "status", "tenant_id", "last_seq"])
    .where("id", "=", v.id)
    .compile(),
);

const selectRun = preparedStatement((ctx, v: { id: string }) =>
  ctx.db.selectFrom("runs").selectAll().where("id", "=", v.id).compile(),
);

/** The runs: one record per execution of a workflow, an agent task or a bot. */
export interface RunsRepo {
  /** Stores a new run and returns it. */
  create(input: NewRun): Promise<RunRecord>;
  /**
   * Stores a new run with its first event (`run.queued`) as seq 1, in one transaction of two
   * statements (`create` then `events.appendForRun` take five); `logLimit` is the cap its later
   * appends keep to, recorded on the row at once.
   * Answers the event as stored, and as the JSON text it was stored as.
   */
  createWithEvent(
    input: NewRun,
    first: UnnumberedEvent,
    logLimit: RunLogLimit,
  ): Promise<{ record: RunRecord; event: RunEvent; json: string }>;
  /** Changes a run; undefined when it does not exist or its status is not in `ifStatus`. */
  update(id: string, patch: RunPatch, opts?: IfStatus<RunStatus>): Promise<RunRecord | undefined>;
  /**
   * Changes a run as `update` does, without reading its record back (what a run's projection
   * writes, at each of its events); false when it does not exist or its status is not in `ifStatus`.
   */
  patch(id: string, patch: RunPatch, opts?: IfStatus<RunStatus>): Promise<boolean>;
  /** One run, or undefined (the agent-server API's `GET /run-status` answers 404 then). */
  get(id: string): Promise<RunRecord | undefined>;
  /** A run's status, tenant and last seq, or undefined; its spec and variables are not read. */
  state(id: string): Promise<RunState | undefined>;
  /** One page of runs, newest first, filtered. An unknown `before` cursor is INVALID_INPUT. */
  list(query?: ListRunsQuery): Promise<RunPage>;
  /** Every run in one of these statuses, oldest first; for reconciliation at start-up. */
  listByStatus(statuses: readonly RunStatus[]): Promise<RunRecord[]>;
  /**
   * Marks `running` runs (all, or those among `ids`) `interrupted` with `reason` as their error
   * and `finished_at` now, in one statement. Queued runs are left queued. Returns the ids changed.
   */
  markInterruptedRunning(reason: ErrorInfo, opts?: { ids?: readonly string[] }): Promise<string[]>;
  /** How many runs there are of each kind and status; pairs with no run are left out. */
  count(): Promise<RunCount[]>;
  /** The runs that retry `id` (`retry_of`), oldest first. */
  retriesOf(id: string): Promise<Pick<RunRecord, "id" | "status" | "retry_from" | "created_at">[]>;
  /** Queued and running runs of a tenant and/or of some submitters (quotas). */
  countActive(query?: ActiveRunsQuery): Promise<ActiveRunCount>;
  /** The runs `workflow.call` steps of a run started, oldest first (all, or the one of `step`). */
  children(parentId: string, step?: string): Promise<RunRecord[]>;
}

export function runsRepo(ctx: StoreContext): RunsRepo {
  const repo: RunsRepo = {
    async create(input) {
      const { record, row } = newRun(ctx, input);
      await storingNew(ctx, record.id, () => insertRun(ctx, row));
      return record;
    },
    async createWithEvent(input, first, logLimit) {
      const { record, row } = newRun(ctx, input, {
        last_seq: 1,
        log_max_bytes: Math.max(0, logLimit.maxBytes),
        log_rolling: logLimit.rolling === true ? 1 : 0,
        log_bytes: Math.max(0, logLimit.storedBytes),
      });
      const event = { ...first, run_id: record.id, seq: 1 } as RunEvent;
      const stored = eventRow(event);
      await storingNew(ctx, record.id, () =>
        ctx.dialect.name === "postgres"
          ? // One statement, so one round trip instead of four (`begin`, two inserts, `commit`).
            insertRunWithEvent(ctx, { row, event: stored })
          : ctx.db.transaction().execute(async (trx) => {
              const inTrx: StoreContext = { ...ctx, db: trx };
              await insertRun(inTrx, row);
              await insertEvents(inTrx, [stored]);
            }),
      );
      // Its first batches go in one statement each (append-run-events.ts, `appendKnown`).
      if (ctx.dialect.name === "postgres")
        rememberRun(record.id, {
          lastSeq: 1,
          logBytes: Math.max(0, logLimit.storedBytes),
          maxBytes: Math.max(0, logLimit.maxBytes),
          rolling: logLimit.rolling === true,
        });
      return { record: { ...record, last_seq: 1 }, event, json: stored.data };
    },
    async update(id, patch, opts = {}) {
      const set = runColumns(ctx, patch);
      if (opts.ifStatus?.length === 0) return undefined;
      if (Object.keys(set).length === 0) {
        const run = await repo.get(id);
        return run && (!opts.ifStatus || opts.ifStatus.includes(run.status)) ? run : undefined;
      }
      const row = (await updateReturning(ctx, { id, set, ifStatus: opts.ifStatus ?? null })).rows[0];
      return row && toRunRecord(ctx, row);
    },
    async patch(id, patch, opts = {}) {
      const set = runColumns(ctx, patch);
      if (opts.ifStatus?.length === 0 || Object.keys(set).length === 0) {
        return (await repo.update(id, patch, opts)) !== undefined;
      }
      const result = await updateOnly(ctx, { id, set, ifStatus: opts.ifStatus ?? null });
      return (result.numAffectedRows ?? 0n) > 0n;
    },
    async get(id) {
      const row = (await selectRun(ctx, { id })).rows[0];
      return row && toRunRecord(ctx, row);
    },
    async state(id) {
      const row = (await selectRunState(ctx, { id })).rows[0];
      return row && { id: row.id, status: row.status, tenant_id: row.tenant_id, last_seq: int(row.last_seq) };
    },
    async list(query = {}) {
      const statuses = query.status === undefined ? undefined : [query.status].flat();
      if (statuses?.length === 0) return { runs: [] };
      let select = ctx.db.selectFrom("runs").selectAll();
      if (statuses) select = select.where("status", "in", statuses);
      if (query.kind !== undefined) select = select.where("kind", "=", query.kind);
      if (query.trigger === "retry") select = select.where("retry_of", "is not", null);
      else if (query.trigger !== undefined) select = select.where("trigger", "=", query.trigger);
      if (query.tenantId !== undefined)
        select = select.where("tenant_id", query.tenantId === null ? "is" : "=", query.tenantId);
      if (query.name !== undefined) select = select.where("name", "=", query.name);
      const { rows, next } = await newestFirstPage(ctx, pagedRuns, select, query);
      const runs = rows.map((row) => toRunRecord(ctx, row));
      return next === undefined ? { runs } : { runs, next };
    },
    async listByStatus(statuses) {
      if (statuses.length === 0) return [];
      const rows = await ctx.db
        .selectFrom("runs")
        .selectAll()
        .where("status", "in", statuses)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map((row) => toRunRecord(ctx, row));
    },
    async markInterruptedRunning(reason, opts = {}) {
      if (opts.ids?.length === 0) return [];
      let update = ctx.db
        .updateTable("runs")
        .set({ status: "interrupted", error: encodeJson(reason), finished_at: isoTime(ctx.now()) })
        .where("status", "=", "running");
      if (opts.ids) update = update.where("id", "in", opts.ids);
      const rows = await update.returning("id").execute();
      return rows.map((row) => row.id).sort();
    },
    async count() {
      const rows = await ctx.db
        .selectFrom("runs")
        .select(["kind", "status", (eb) => eb.fn.countAll<number | string>().as("count")])
        .groupBy(["kind", "status"])
        .orderBy("kind")
        .orderBy("status")
        .execute();
      return rows.map((row) => ({ kind: row.kind, status: row.status, count: Number(row.count) }));
    },
    async retriesOf(id) {
      return ctx.db
        .selectFrom("runs")
        .select(["id", "status", "retry_from", "created_at"])
        .where("retry_of", "=", id)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
    },
    async countActive(query = {}) {
      let select = ctx.db
        .selectFrom("runs")
        .select(["status", (eb) => eb.fn.countAll<number | string>().as("count")])
        .where("status", "in", ["queued", "running"])
        // A bot's run lasts its whole life; bots have a quota of their own (max_bots).
        .where("kind", "<>", "bot");
      if (query.tenantId === null) select = select.where("tenant_id", "is", null);
      else if (query.tenantId !== undefined) select = select.where("tenant_id", "=", query.tenantId);
      if (query.user !== undefined) select = select.where("created_by_user", "=", query.user);
      const rows = await select.groupBy("status").execute();
      const count = (status: string) => Number(rows.find((row) => row.status === status)?.count ?? 0);
      return { queued: count("queued"), running: count("running") };
    },
    async children(parentId, step) {
      let query = ctx.db.selectFrom("runs").selectAll().where("parent_run_id", "=", parentId);
      if (step !== undefined) query = query.where("parent_step", "=", step);
      const rows = await query.orderBy("created_at").orderBy("id").execute();
      return rows.map((row) => toRunRecord(ctx, row));
    },
  };
  return repo;
}
