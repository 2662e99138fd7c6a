import { type Kysely, type Selectable, type SelectQueryBuilder, sql, type Updateable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { JobKind } from "../core/jobs/index.js";
import { plainColumns } from "./column-cipher.js";
import { decodeJson, encodeJson, int, isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type {
  ClaimingRunner,
  JobLoss,
  JobRecord,
  JobRefusal,
  JobRequirements,
  JobStatus,
  ListJobsQuery,
  NewJob,
  QueuedJobs,
} from "./job-records.js";
import { servesEveryTenant } from "./placement.js";
import { preparedStatement } from "./prepared.js";
import type { Database, JobsTable } from "./schema.js";

const leasedStatuses: readonly JobStatus[] = ["assigned", "running"];

function toJobRecord(ctx: StoreContext, row: Selectable<JobsTable>): JobRecord {
  const { req_group, req_tenant_id, req_labels, ...job } = row;
  const requirements: JobRequirements = {
    labels: decodeJson<string[]>(req_labels),
    tenant_id: req_tenant_id,
  };
  if (req_group !== null) requirements.group = req_group;
  return {
    ...job,
    requirements,
    payload: decodeJson(ctx.cipher.open(row.payload)),
    result: row.result === null ? null : decodeJson(ctx.cipher.open(row.result)),
    last_event_seq: int(row.last_event_seq),
    refusals: row.refusals === null ? [] : decodeJson<JobRefusal[]>(row.refusals),
  };
}

interface Move {
  id: string;
  from: readonly JobStatus[];
  runnerId: string | null;
  batches: number | null;
  set: Updateable<JobsTable>;
}

const moveStatement = preparedStatement(
  (ctx, v: Move, input: Move) =>
    ctx.db
      .updateTable("jobs")
      .set(v.set)
      .where("id", "=", v.id)
      .where("status", "in", v.from)
      .$if(input.runnerId !== null, (update) => update.where("runner_id", "=", v.runnerId ?? ""))
      .$if(input.batches !== null, (update) => update.where("last_event_seq", ">=", v.batches ?? 0))
      .returningAll()
      .compile(),
  (input) => `${input.runnerId === null ? "" : "runner"}|${input.batches === null ? "" : "batches"}`,
);

/** A state change's one statement: `set` only while status is in `from` (and `runnerId`, `batches` hold). */
async function moveJob(
  ctx: StoreContext,
  id: string,
  where: { from: readonly JobStatus[]; runnerId?: string; batches?: number | undefined },
  set: Updateable<JobsTable>,
): Promise<JobRecord | undefined> {
  const { from, runnerId = null, batches = null } = where;
  const move = { id, from, runnerId, batches, set: { ...set, updated_at: isoTime(ctx.now()) } };
  const row = (await moveStatement(ctx, move)).rows[0];
  return row && toJobRecord(ctx, row);
}

function leaseEnd(ctx: StoreContext, leaseMs: number): string {
  return isoTime(new Date(ctx.now().getTime() + leaseMs));
}

/** A job's row as `createJob` inserts it. */
type NewJobRow = Omit<JobsTable, "last_event_seq">;

const insertJob = preparedStatement((ctx, row: NewJobRow) => ctx.db.insertInto("jobs").values(row).compile());

const selectJob = preparedStatement((ctx, job: { id: string }) =>
  ctx.db.selectFrom("jobs").selectAll().where("id", "=", job.id).compile(),
);

/** The leased jobs whose lease ended before `now`: the leader asks twice a second, mostly for none. */
const selectExpired = preparedStatement((ctx, v: { now: string }) =>
  ctx.db
    .selectFrom("jobs")
    .selectAll()
    .where("status", "in", leasedStatuses)
    .where("lease_expires_at", "<", v.now)
    .orderBy("lease_expires_at")
    .orderBy("id")
    .compile(),
);

interface ClaimInput {
  now: string;
  leaseEnd: string;
  runnerId: string;
  group: string;
  /** The runner's tenant: only that tenant's jobs. */
  tenantId: string | null;
  /** Outside every tenant: jobs of none (`none`), or of every tenant too (`all`, see placement.ts). */
  tenants: "own" | "none" | "all";
  labels: readonly string[];
  types: readonly JobKind[] | null;
  replicaId: string | null;
}

/**
 * The queued jobs a runner may take: not waiting out a back-off, of its group, placed for it
 * (placement.ts), of its kinds, and with no label it lacks.
 */
function queuedFor<O>(
  query: SelectQueryBuilder<Database & { c: JobsTable }, "c", O>,
  v: ClaimInput,
  input: ClaimInput,
): SelectQueryBuilder<Database & { c: JobsTable }, "c", O> {
  return (
    query
      .where("c.status", "=", "queued")
      // A refused job waits out its back-off (refuseJob).
      .where((eb) => eb.or([eb("c.not_before", "is", null), eb("c.not_before", "<=", v.now)]))
      .where((eb) => eb.or([eb("c.req_group", "is", null), eb("c.req_group", "=", v.group)]))
      // Placement (placement.ts): the tenant's own jobs; outside every tenant, those of none, and
      // every tenant's too for a shared runner that isolates.
      .$call((q) => {
        if (input.tenants === "own") return q.where("c.req_tenant_id", "=", v.tenantId);
        return input.tenants === "all" ? q : q.where("c.req_tenant_id", "is", null);
      })
      .$if(input.types !== null, (q) => q.where("c.type", "in", v.types ?? []))
      .where((eb) => {
        let missing = eb.selectFrom("job_labels as l").select("l.label").whereRef("l.job_id", "=", "c.id");
        if (input.labels.length > 0) missing = missing.where("l.label", "not in", v.labels);
        return eb.not(eb.exists(missing));
      })
  );
}

const claimStatement = preparedStatement(
  (ctx, v: ClaimInput, input: ClaimInput) => {
    const candidate = ctx.dialect.lockClaimCandidate(
      queuedFor(ctx.db.selectFrom("jobs as c"), v, input)
        .select("c.id")
        .orderBy("c.created_at")
        .orderBy("c.id")
        .limit(1),
    );
    let claim = ctx.db
      .updateTable("jobs")
      .set({ status: "assigned", runner_id: v.runnerId, lease_expires_at: v.leaseEnd, updated_at: v.now })
      .where("status", "=", "queued")
      .where("id", "=", candidate);
    if (input.replicaId !== null) {
      claim = claim.where((eb) =>
        eb.exists(
          eb
            .selectFrom("runners as r")
            .select("r.id")
            .where("r.id", "=", v.runnerId)
            .where("r.replica_id", "=", v.replicaId),
        ),
      );
    }
    // Whether another job waits for the runner, read by the same statement: a runner's next claim
    // is then known to find nothing without making it (its session waits for the queue to change).
    return claim
      .returningAll()
      .returning((eb) =>
        eb
          .exists(
            queuedFor(eb.selectFrom("jobs as c"), v, input)
              .select("c.id")
              .where("c.id", "<>", sql.ref<string>("jobs.id")),
          )
          .as("more"),
      )
      .compile();
  },
  (input) =>
    `${input.tenants}|${input.types === null ? "any" : "types"}|${input.replicaId === null ? "" : "replica"}`,
);

/** The jobs for runners: one step attempt, agent task or bot life each. */
export interface JobsRepo {
  create(input: NewJob): Promise<JobRecord>;
  get(id: string): Promise<JobRecord | undefined>;
  /**
   * Atomically assigns the oldest queued job this runner may run (group, labels, tenant), leased for
   * `leaseMs`; undefined when none waits. Concurrent claimers never get the same job.
   */
  claim(runner: ClaimingRunner, leaseMs: number): Promise<JobRecord | undefined>;
  /**
   * `claim`, and whether another queued job waited for the runner as it claimed (`more`): when
   * none did, a claim right after would find nothing, unless the queue changed meanwhile.
   */
  claimNext(runner: ClaimingRunner, leaseMs: number): Promise<{ job: JobRecord; more: boolean } | undefined>;
  /**
   * assigned -> queued, refused unstarted by its runner `runnerId`: `refusals` its whole list, no claim
   * before `notBefore`; undefined when not assigned to it (an accepted job runs, or is lost).
   */
  refuse(
    id: string,
    runnerId: string,
    refusals: readonly JobRefusal[],
    notBefore: Date,
  ): Promise<JobRecord | undefined>;
  /* A job's transitions, one verb each (JobQueue their only caller); undefined when not in the from state. */
  /** assigned -> running: the runner holding it took it up. */
  accept(id: string, runnerId: string): Promise<JobRecord | undefined>;
  /**
   * assigned | running -> done, only while its runner holds it (a job lost or canceled meanwhile keeps
   * that outcome); with `batches`, only once that many event batches are stored.
   */
  complete(id: string, runnerId: string, result: unknown, batches?: number): Promise<JobRecord | undefined>;
  /** assigned -> queued for any runner: its runner gave it back unstarted (draining, stopping). */
  giveBack(id: string, runnerId: string): Promise<JobRecord | undefined>;
  /**
   * assigned | running -> lost: its runner is gone or no longer holds it. Only while `runnerId` holds
   * it, so a job claimed by another runner since the caller read it is not lost with the first.
   */
  lose(id: string, runnerId: string, loss: JobLoss): Promise<JobRecord | undefined>;
  /** assigned -> done with `result`: refused once too often, it is given up. */
  giveUp(id: string, runnerId: string, result: unknown): Promise<JobRecord | undefined>;
  /** queued -> done with `result`: canceled before any runner claimed it (one claimed is left alone). */
  cancelQueued(id: string, result: unknown): Promise<JobRecord | undefined>;
  /** queued | assigned | running -> done: canceled, its runner silent or gone; a late report is refused. */
  cancel(id: string, result: unknown): Promise<JobRecord | undefined>;
  /** Extends the leases of a runner's active jobs (with `jobIds`, of those only); answers their ids. */
  renewLeases(runnerId: string, leaseMs: number, jobIds?: readonly string[]): Promise<string[]>;
  /** Leases the active jobs of `runIds` until `until`: a restarted server's grace for runners to return. */
  holdLeases(runIds: readonly string[], until: Date): Promise<string[]>;
  list(query?: ListJobsQuery): Promise<JobRecord[]>;
  /** How many jobs wait for a runner, and since when the oldest has (null when none waits). */
  queue(): Promise<QueuedJobs>;
  /** When the first queued job still waiting out a refusal's back-off may be claimed; undefined: none waits so. */
  nextBackoffEnd(): Promise<Date | undefined>;
  /** Assigned or running jobs whose lease ended before `now` (default: the store clock's now). */
  expired(now?: string): Promise<JobRecord[]>;
}

export function jobsRepo(ctx: StoreContext): JobsRepo {
  /** The columns of a job that ends with `result` (a queued job has no lease to clear either). */
  const ending = (status: "done" | "lost", result: unknown) =>
    ({ status, result: ctx.cipher.seal(encodeJson(result)), lease_expires_at: null }) as const;
  const claimNext: JobsRepo["claimNext"] = async (runner, leaseMs) => {
    const tenants = runner.tenant_id !== null ? "own" : servesEveryTenant(runner) ? "all" : "none";
    const { rows } = await claimStatement(ctx, {
      now: isoTime(ctx.now()),
      leaseEnd: leaseEnd(ctx, leaseMs),
      runnerId: runner.id,
      group: runner.group,
      tenantId: runner.tenant_id,
      tenants,
      labels: runner.labels,
      types: runner.onlyTypes ?? null,
      replicaId: runner.replica_id ?? null,
    });
    const row = rows[0];
    if (!row) return undefined;
    const { more, ...job } = row;
    // SQLite answers 0 or 1, PostgreSQL a boolean.
    return { job: toJobRecord(ctx, job), more: Boolean(more) };
  };

  return {
    async create(input) {
      const id = input.id ?? newId("job");
      const labels = [...new Set(input.requirements.labels)];
      const createdAt = isoTime(input.created_at ?? ctx.now());
      const payload = encodeJson(input.payload);
      const row: NewJobRow = {
        id,
        run_id: input.run_id,
        type: input.type ?? "step",
        status: "queued",
        req_group: input.requirements.group ?? null,
        req_tenant_id: input.requirements.tenant_id ?? null,
        req_labels: encodeJson(labels),
        payload: ctx.cipher.seal(payload),
        result: null,
        runner_id: null,
        lease_expires_at: null,
        refusals: null,
        not_before: null,
        created_at: createdAt,
        updated_at: createdAt,
      };
      const insertWithLabels = async (trx: Kysely<Database>) => {
        await insertJob({ ...ctx, db: trx }, row);
        if (labels.length > 0) {
          await trx
            .insertInto("job_labels")
            .values(labels.map((label) => ({ job_id: id, label })))
            .execute();
        }
      };
      try {
        // A job without labels is one row: no transaction (a round trip each on PostgreSQL).
        await (labels.length === 0
          ? insertWithLabels(ctx.db)
          : ctx.db.transaction().execute(insertWithLabels));
      } catch (error) {
        const violation = ctx.dialect.constraintViolation(error);
        if (violation === "unique")
          throw new RunyardError("CONFLICT", `job ${id} exists already`, { cause: error });
        if (violation === "foreign_key") {
          throw new RunyardError("NOT_FOUND", `no run ${input.run_id} to queue a job for`, { cause: error });
        }
        throw error;
      }
      // The row as inserted, without reading it back (nor opening the payload just sealed).
      return toJobRecord({ ...ctx, cipher: plainColumns }, { ...row, payload, last_event_seq: 0 });
    },
    async get(id) {
      const row = (await selectJob(ctx, { id })).rows[0];
      return row && toJobRecord(ctx, row);
    },
    async claim(runner, leaseMs) {
      return (await claimNext(runner, leaseMs))?.job;
    },
    claimNext,
    async refuse(id, runnerId, refusals, notBefore) {
      return moveJob(
        ctx,
        id,
        { from: ["assigned"], runnerId },
        {
          status: "queued",
          runner_id: null,
          lease_expires_at: null,
          refusals: encodeJson(refusals),
          not_before: isoTime(notBefore),
        },
      );
    },
    accept: (id, runnerId) => moveJob(ctx, id, { from: ["assigned"], runnerId }, { status: "running" }),
    complete: (id, runnerId, result, batches) =>
      moveJob(ctx, id, { from: leasedStatuses, runnerId, batches }, ending("done", result)),
    giveBack: (id, runnerId) =>
      moveJob(
        ctx,
        id,
        { from: ["assigned"], runnerId },
        { status: "queued", runner_id: null, lease_expires_at: null },
      ),
    lose: (id, runnerId, loss) => moveJob(ctx, id, { from: leasedStatuses, runnerId }, ending("lost", loss)),
    giveUp: (id, runnerId, result) =>
      moveJob(ctx, id, { from: ["assigned"], runnerId }, ending("done", result)),
    cancelQueued: (id, result) => moveJob(ctx, id, { from: ["queued"] }, ending("done", result)),
    cancel: (id, result) => moveJob(ctx, id, { from: ["queued", ...leasedStatuses] }, ending("done", result)),
    async renewLeases(runnerId, leaseMs, jobIds) {
      if (jobIds?.length === 0) return [];
      let update = ctx.db
        .updateTable("jobs")
        .set({ lease_expires_at: leaseEnd(ctx, leaseMs), updated_at: isoTime(ctx.now()) })
        .where("runner_id", "=", runnerId)
        .where("status", "in", leasedStatuses);
      if (jobIds) update = update.where("id", "in", jobIds);
      const rows = await update.returning("id").execute();
      return rows.map((row) => row.id).sort();
    },
    async holdLeases(runIds, until) {
      if (runIds.length === 0) return [];
      const rows = await ctx.db
        .updateTable("jobs")
        .set({ lease_expires_at: isoTime(until), updated_at: isoTime(ctx.now()) })
        .where("run_id", "in", runIds)
        .where("status", "in", leasedStatuses)
        .returning("id")
        .execute();
      return rows.map((row) => row.id).sort();
    },
    async list(query = {}) {
      if (query.statuses?.length === 0 || query.ids?.length === 0) return [];
      let select = ctx.db.selectFrom("jobs").selectAll();
      if (query.ids !== undefined) select = select.where("id", "in", query.ids);
      if (query.runnerId !== undefined) select = select.where("runner_id", "=", query.runnerId);
      if (query.runId !== undefined) select = select.where("run_id", "=", query.runId);
      if (query.statuses) select = select.where("status", "in", query.statuses);
      const rows = await select.orderBy("created_at").orderBy("id").execute();
      return rows.map((row) => toJobRecord(ctx, row));
    },
    async queue() {
      const row = await ctx.db
        .selectFrom("jobs")
        .select((eb) => [
          eb.fn.countAll<number | string>().as("queued"),
          eb.fn.min("created_at").as("oldest"),
        ])
        .where("status", "=", "queued")
        .executeTakeFirstOrThrow();
      return { queued: Number(row.queued), oldest_created_at: row.oldest ?? null };
    },
    async nextBackoffEnd() {
      const row = await ctx.db
        .selectFrom("jobs")
        .select((eb) => eb.fn.min("not_before").as("next"))
        .where("status", "=", "queued")
        .where("not_before", ">", isoTime(ctx.now()))
        .executeTakeFirst();
      return row?.next ? new Date(row.next) : undefined;
    },
    async expired(now) {
      const { rows } = await selectExpired(ctx, { now: isoTime(now ?? ctx.now()) });
      return rows.map((row) => toJobRecord(ctx, row));
    },
  };
}
