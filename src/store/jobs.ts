import type { Kysely, Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { StoreContext } from "./dialect.js";
import { servesEveryTenant } from "./placement.js";
import { type Database, decodeJson, encodeJson, int, isoTime, type JobsTable } from "./schema.js";
import type {
  ClaimingRunner,
  JobRecord,
  JobRefusal,
  JobRequirements,
  JobStatus,
  ListJobsQuery,
  NewJob,
  QueuedJobs,
} from "./types.js";

const leasedStatuses: readonly JobStatus[] = ["assigned", "running"];

function toJobRecord(ctx: StoreContext, row: Selectable<JobsTable>): JobRecord {
  const requirements: JobRequirements = {
    labels: decodeJson<string[]>(row.req_labels),
    tenant_id: row.req_tenant_id,
  };
  if (row.req_group !== null) requirements.group = row.req_group;
  return {
    id: row.id,
    run_id: row.run_id,
    type: row.type,
    status: row.status,
    requirements,
    payload: decodeJson(ctx.cipher.open(row.payload)),
    result: row.result === null ? null : decodeJson(ctx.cipher.open(row.result)),
    runner_id: row.runner_id,
    lease_expires_at: row.lease_expires_at,
    last_event_seq: int(row.last_event_seq),
    refusals: row.refusals === null ? [] : decodeJson<JobRefusal[]>(row.refusals),
    not_before: row.not_before,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

function leaseEnd(ctx: StoreContext, leaseMs: number): string {
  return isoTime(new Date(ctx.now().getTime() + leaseMs));
}

export async function createJob(ctx: StoreContext, input: NewJob): Promise<JobRecord> {
  const id = input.id ?? newId("job");
  const labels = [...new Set(input.requirements.labels)];
  const createdAt = isoTime(input.created_at ?? ctx.now());
  const insertJob = async (trx: Kysely<Database>) => {
    const inserted = await trx
      .insertInto("jobs")
      .values({
        id,
        run_id: input.run_id,
        type: input.type ?? "step",
        status: "queued",
        req_group: input.requirements.group ?? null,
        req_tenant_id: input.requirements.tenant_id ?? null,
        req_labels: encodeJson(labels),
        payload: ctx.cipher.seal(encodeJson(input.payload)),
        result: null,
        runner_id: null,
        lease_expires_at: null,
        refusals: null,
        not_before: null,
        created_at: createdAt,
        updated_at: createdAt,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    if (labels.length > 0) {
      await trx
        .insertInto("job_labels")
        .values(labels.map((label) => ({ job_id: id, label })))
        .execute();
    }
    return inserted;
  };
  try {
    // A job without labels is one row: one statement, no transaction (a round trip each on
    // PostgreSQL).
    const row = await (labels.length === 0 ? insertJob(ctx.db) : ctx.db.transaction().execute(insertJob));
    return toJobRecord(ctx, row);
  } catch (error) {
    const violation = ctx.dialect.constraintViolation(error);
    if (violation === "unique")
      throw new RunyardError("CONFLICT", `job ${id} exists already`, { cause: error });
    if (violation === "foreign_key") {
      throw new RunyardError("NOT_FOUND", `no run ${input.run_id} to queue a job for`, { cause: error });
    }
    throw error;
  }
}

export async function getJob(ctx: StoreContext, id: string): Promise<JobRecord | undefined> {
  const row = await ctx.db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: `update jobs ... where status = 'queued' and id = (oldest matching queued job)
 * returning *`. Only the candidate subquery differs per dialect (see `StoreDialect`).
 */
export async function claimJob(
  ctx: StoreContext,
  runner: ClaimingRunner,
  leaseMs: number,
): Promise<JobRecord | undefined> {
  const now = isoTime(ctx.now());
  const candidate = ctx.dialect.lockClaimCandidate(
    ctx.db
      .selectFrom("jobs as c")
      .select("c.id")
      .where("c.status", "=", "queued")
      // A refused job waits out its back-off (refuseJob).
      .where((eb) => eb.or([eb("c.not_before", "is", null), eb("c.not_before", "<=", now)]))
      .where((eb) => eb.or([eb("c.req_group", "is", null), eb("c.req_group", "=", runner.group)]))
      // Placement (placement.ts): the tenant's own jobs; outside every tenant, those of none, and
      // every tenant's too for a shared runner that isolates.
      .$call((q) => {
        const tenant = runner.tenant_id;
        if (tenant !== null) return q.where("c.req_tenant_id", "=", tenant);
        return servesEveryTenant(runner) ? q : q.where("c.req_tenant_id", "is", null);
      })
      .$if(runner.onlyTypes !== undefined, (q) => q.where("c.type", "in", [...(runner.onlyTypes ?? [])]))
      .where((eb) => {
        let missing = eb.selectFrom("job_labels as l").select("l.label").whereRef("l.job_id", "=", "c.id");
        if (runner.labels.length > 0) missing = missing.where("l.label", "not in", runner.labels);
        return eb.not(eb.exists(missing));
      })
      .orderBy("c.created_at")
      .orderBy("c.id")
      .limit(1),
  );
  let claim = ctx.db
    .updateTable("jobs")
    .set({
      status: "assigned",
      runner_id: runner.id,
      lease_expires_at: leaseEnd(ctx, leaseMs),
      updated_at: now,
    })
    .where("status", "=", "queued")
    .where("id", "=", candidate);
  const replicaId = runner.replica_id;
  if (replicaId !== undefined) {
    claim = claim.where((eb) =>
      eb.exists(
        eb
          .selectFrom("runners as r")
          .select("r.id")
          .where("r.id", "=", runner.id)
          .where("r.replica_id", "=", replicaId),
      ),
    );
  }
  const row = await claim.returningAll().executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: a runner gave back a job it could not run, unstarted. Only while it is still
 * assigned to that runner (a job it accepted is not refused: it runs, or is lost); the caller
 * passes the whole list of refusals, read from the job it holds.
 */
export async function refuseJob(
  ctx: StoreContext,
  id: string,
  runnerId: string,
  refusals: readonly JobRefusal[],
  notBefore: Date,
): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({
      status: "queued",
      runner_id: null,
      lease_expires_at: null,
      refusals: encodeJson(refusals),
      not_before: isoTime(notBefore),
      updated_at: isoTime(ctx.now()),
    })
    .where("id", "=", id)
    .where("status", "=", "assigned")
    .where("runner_id", "=", runnerId)
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/** One statement: the runner took up the job it was assigned; only that runner can say so. */
export async function acceptJob(
  ctx: StoreContext,
  id: string,
  runnerId: string,
): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({ status: "running", updated_at: isoTime(ctx.now()) })
    .where("id", "=", id)
    .where("status", "=", "assigned")
    .where("runner_id", "=", runnerId)
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: the runner holding the job reported its result. Only while it still holds it:
 * a job lost or canceled meanwhile keeps the outcome it got then.
 */
export async function completeJob(
  ctx: StoreContext,
  id: string,
  runnerId: string,
  result: unknown,
): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({
      status: "done",
      result: ctx.cipher.seal(encodeJson(result)),
      lease_expires_at: null,
      updated_at: isoTime(ctx.now()),
    })
    .where("id", "=", id)
    .where("status", "in", leasedStatuses)
    .where("runner_id", "=", runnerId)
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: the runner gave the job back before it started it (it is draining or stopping);
 * it is queued again at once for any runner. A job it accepted is not returned: it is lost.
 */
export async function returnJob(
  ctx: StoreContext,
  id: string,
  runnerId: string,
): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({ status: "queued", runner_id: null, lease_expires_at: null, updated_at: isoTime(ctx.now()) })
    .where("id", "=", id)
    .where("status", "=", "assigned")
    .where("runner_id", "=", runnerId)
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: the job's runner is gone or no longer holds it (lease expired, it came back
 * without it, its token was revoked); the engine retries the attempt or interrupts the run.
 */
export async function loseJob(ctx: StoreContext, id: string): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({ status: "lost", lease_expires_at: null, updated_at: isoTime(ctx.now()) })
    .where("id", "=", id)
    .where("status", "in", leasedStatuses)
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: every refusal the job may have was used up while its last refuser still held
 * it; it ends with `result` (JOB_REFUSED) and is offered no more.
 */
export async function giveUpJob(
  ctx: StoreContext,
  id: string,
  runnerId: string,
  result: unknown,
): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({
      status: "done",
      result: ctx.cipher.seal(encodeJson(result)),
      lease_expires_at: null,
      updated_at: isoTime(ctx.now()),
    })
    .where("id", "=", id)
    .where("status", "=", "assigned")
    .where("runner_id", "=", runnerId)
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: a canceled job no runner has claimed ends here with `result`; a job claimed
 * meanwhile is left alone, to be stopped on its runner.
 */
export async function cancelQueuedJob(
  ctx: StoreContext,
  id: string,
  result: unknown,
): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({ status: "done", result: ctx.cipher.seal(encodeJson(result)), updated_at: isoTime(ctx.now()) })
    .where("id", "=", id)
    .where("status", "=", "queued")
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

/**
 * One statement: a canceled job ends here with `result` whoever holds it, because no runner holds
 * it live or its runner did not report in time; a late report from the runner is then refused.
 */
export async function cancelJob(
  ctx: StoreContext,
  id: string,
  result: unknown,
): Promise<JobRecord | undefined> {
  const row = await ctx.db
    .updateTable("jobs")
    .set({
      status: "done",
      result: ctx.cipher.seal(encodeJson(result)),
      lease_expires_at: null,
      updated_at: isoTime(ctx.now()),
    })
    .where("id", "=", id)
    .where("status", "in", ["queued", ...leasedStatuses])
    .returningAll()
    .executeTakeFirst();
  return row && toJobRecord(ctx, row);
}

export async function renewLeases(
  ctx: StoreContext,
  runnerId: string,
  leaseMs: number,
  jobIds?: readonly string[],
): Promise<string[]> {
  if (jobIds?.length === 0) return [];
  let update = ctx.db
    .updateTable("jobs")
    .set({ lease_expires_at: leaseEnd(ctx, leaseMs), updated_at: isoTime(ctx.now()) })
    .where("runner_id", "=", runnerId)
    .where("status", "in", leasedStatuses);
  if (jobIds) update = update.where("id", "in", jobIds);
  const rows = await update.returning("id").execute();
  return rows.map((row) => row.id).sort();
}

/**
 * One statement: after a server restart, the leased jobs of the runs it carries on get until
 * `until` for their runners to come back, however soon their leases would have lapsed.
 */
export async function holdLeases(
  ctx: StoreContext,
  runIds: readonly string[],
  until: Date,
): Promise<string[]> {
  if (runIds.length === 0) return [];
  const rows = await ctx.db
    .updateTable("jobs")
    .set({ lease_expires_at: isoTime(until), updated_at: isoTime(ctx.now()) })
    .where("run_id", "in", runIds)
    .where("status", "in", leasedStatuses)
    .returning("id")
    .execute();
  return rows.map((row) => row.id).sort();
}

export async function listJobs(ctx: StoreContext, query: ListJobsQuery = {}): Promise<JobRecord[]> {
  if (query.statuses?.length === 0) return [];
  let select = ctx.db.selectFrom("jobs").selectAll();
  if (query.runnerId !== undefined) select = select.where("runner_id", "=", query.runnerId);
  if (query.runId !== undefined) select = select.where("run_id", "=", query.runId);
  if (query.statuses) select = select.where("status", "in", query.statuses);
  const rows = await select.orderBy("created_at").orderBy("id").execute();
  return rows.map((row) => toJobRecord(ctx, row));
}

export async function expiredJobs(ctx: StoreContext, now?: string): Promise<JobRecord[]> {
  const rows = await ctx.db
    .selectFrom("jobs")
    .selectAll()
    .where("status", "in", leasedStatuses)
    .where("lease_expires_at", "<", isoTime(now ?? ctx.now()))
    .orderBy("lease_expires_at")
    .orderBy("id")
    .execute();
  return rows.map((row) => toJobRecord(ctx, row));
}

export async function jobQueue(ctx: StoreContext): Promise<QueuedJobs> {
  const row = await ctx.db
    .selectFrom("jobs")
    .select((eb) => [eb.fn.countAll<number | string>().as("queued"), eb.fn.min("created_at").as("oldest")])
    .where("status", "=", "queued")
    .executeTakeFirstOrThrow();
  return { queued: Number(row.queued), oldest_created_at: row.oldest ?? null };
}
