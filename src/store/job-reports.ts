import type { Selectable } from "kysely";
import type { StoreContext } from "./dialect.js";
import { decodeJson, encodeJson, int, isoTime, type JobReportsTable } from "./schema.js";

/** What a runner reported on a job whose engine was not where the runner is connected. */
export type JobReportKind = "accepted" | "events" | "finished" | "lost";

/** One stored report (`jobReports.add`). */
export interface JobReport {
  /** Arrival order. */
  id: number;
  job_id: string;
  run_id: string;
  kind: JobReportKind;
  /** The event batch number (`events`), the batch count (`finished`), else 0. */
  batch: number;
  runner_id: string | null;
  /** The report itself, as JSON (events, a result, a reason); sealed at rest. */
  body: unknown;
  created_at: string;
}

export type NewJobReport = Omit<JobReport, "id" | "created_at">;

/*
 * A runner's reports on a job whose engine lives on another replica (or is not running yet):
 * they wait here, in arrival order, until that engine applies and deletes them.
 */

function toJobReport(ctx: StoreContext, row: Selectable<JobReportsTable>): JobReport {
  return {
    id: int(row.id),
    job_id: row.job_id,
    run_id: row.run_id,
    kind: row.kind as JobReport["kind"],
    batch: int(row.batch),
    runner_id: row.runner_id,
    body: decodeJson(ctx.cipher.open(row.body)),
    created_at: row.created_at,
  };
}

/** Stores a report; false when one of the same job, kind and batch is stored already. */
async function addJobReport(ctx: StoreContext, input: NewJobReport): Promise<boolean> {
  const result = await ctx.db
    .insertInto("job_reports")
    .values({
      job_id: input.job_id,
      run_id: input.run_id,
      kind: input.kind,
      batch: input.batch,
      runner_id: input.runner_id,
      body: ctx.cipher.seal(encodeJson(input.body)),
      created_at: isoTime(ctx.now()),
    })
    .onConflict((conflict) => conflict.columns(["job_id", "kind", "batch"]).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
}

/** Reports in arrival order: of these jobs, or of the runs `replicaId` carries. */
async function listJobReports(
  ctx: StoreContext,
  query: { jobIds?: readonly string[]; replicaId?: string; limit?: number },
): Promise<JobReport[]> {
  let select = ctx.db.selectFrom("job_reports").selectAll("job_reports");
  if (query.jobIds) {
    if (query.jobIds.length === 0) return [];
    select = select.where("job_reports.job_id", "in", query.jobIds);
  }
  if (query.replicaId !== undefined) {
    select = select
      .innerJoin("runs", "runs.id", "job_reports.run_id")
      .where("runs.replica_id", "=", query.replicaId);
  }
  const limit = Math.min(10_000, Math.max(1, query.limit ?? 10_000));
  const rows = await select.orderBy("job_reports.id").limit(limit).execute();
  return rows.map((row) => toJobReport(ctx, row));
}

/** Which of these jobs have stored reports (of `kind`, when given), without reading a body. */
async function jobsWithReports(
  ctx: StoreContext,
  jobIds: readonly string[],
  kind?: JobReportKind,
): Promise<string[]> {
  const found = new Set<string>();
  for (let start = 0; start < jobIds.length; start += 500) {
    let select = ctx.db
      .selectFrom("job_reports")
      .select("job_id")
      .distinct()
      .where("job_id", "in", jobIds.slice(start, start + 500));
    if (kind !== undefined) select = select.where("kind", "=", kind);
    for (const row of await select.execute()) found.add(row.job_id);
  }
  return [...found].sort();
}

async function deleteJobReports(ctx: StoreContext, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await ctx.db.deleteFrom("job_reports").where("id", "in", ids).execute();
}

/** Deletes reports no engine will apply: those of ended runs. Returns how many. */
async function pruneJobReports(ctx: StoreContext): Promise<number> {
  const result = await ctx.db
    .deleteFrom("job_reports")
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom("runs")
          .select("runs.id")
          .whereRef("runs.id", "=", "job_reports.run_id")
          .where("runs.status", "not in", ["queued", "running"]),
      ),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** What runners reported on jobs whose engine runs on another replica. */
export interface JobReportsRepo {
  /** Stores a runner's report for the job's engine; false when the same report is stored already. */
  add(input: NewJobReport): Promise<boolean>;
  /** Reports in arrival order, of these jobs or of the runs `replicaId` carries. */
  list(query: {
    jobIds?: readonly string[];
    replicaId?: string;
    /** At most this many (default and cap 10,000): reports carry whole batches. */
    limit?: number;
  }): Promise<JobReport[]>;
  /** Which of these jobs have stored reports (of `kind`, when given); reads no report body. */
  jobsWithReports(jobIds: readonly string[], kind?: JobReportKind): Promise<string[]>;
  /** Deletes these reports (their engine has taken them). */
  delete(ids: readonly number[]): Promise<void>;
  /** Deletes the reports of ended runs; returns how many. */
  prune(): Promise<number>;
}

export function jobReportsRepo(ctx: StoreContext): JobReportsRepo {
  return {
    add: (input) => addJobReport(ctx, input),
    list: (query) => listJobReports(ctx, query),
    jobsWithReports: (jobIds, kind) => jobsWithReports(ctx, jobIds, kind),
    delete: (ids) => deleteJobReports(ctx, ids),
    prune: () => pruneJobReports(ctx),
  };
}
