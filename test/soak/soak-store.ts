import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { type ErrorInfo, RunEvent } from "../../src/core/events.js";
import { api } from "../helpers/server.js";
import type { StoredJob, StoredRun } from "./soak-verdict.js";

/** What the soak reads back from the fleet's database (and the API) once the chaos is over. */

export async function storedRuns(db: pg.Pool, url: string): Promise<StoredRun[]> {
  const { rows } = await db.query<{
    id: string;
    name: string;
    status: string;
    error: string | null;
    last_seq: string;
  }>("select id, name, status, error, last_seq from runs order by created_at");
  const runs: StoredRun[] = [];
  for (const row of rows) {
    const { body } = await api<{ status: string }>(url, "GET", `/api/runs/${row.id}`);
    runs.push({
      id: row.id,
      name: row.name,
      status: row.status,
      error: row.error === null ? null : (JSON.parse(row.error) as ErrorInfo | null),
      lastSeq: Number(row.last_seq),
      apiStatus: body.status,
    });
  }
  return runs;
}

export async function storedJobs(db: pg.Pool): Promise<StoredJob[]> {
  const { rows } = await db.query<{ run_id: string; runner_id: string | null; created_at: string }>(
    "select run_id, runner_id, created_at from jobs order by created_at",
  );
  return rows.map((row) => ({
    runId: row.run_id,
    runnerId: row.runner_id,
    createdAt: Date.parse(row.created_at),
  }));
}

export async function storedEvents(db: pg.Pool): Promise<Map<string, RunEvent[]>> {
  const { rows } = await db.query<{ run_id: string; data: string }>(
    "select run_id, data from run_events order by run_id, seq",
  );
  const events = new Map<string, RunEvent[]>();
  for (const row of rows) {
    const event = RunEvent.parse(JSON.parse(row.data));
    events.set(row.run_id, [...(events.get(row.run_id) ?? []), event]);
  }
  return events;
}

/**
 * The stored events and jobs of every run an anomaly names, one `<dir>/<run>.jsonl` each.
 * Returns a digest of them (every event but output, every job without its result), for a log
 * that outlives the machine the soak ran on.
 */
export async function keepRunsNamed(
  db: pg.Pool,
  dir: string,
  runs: readonly StoredRun[],
  events: ReadonlyMap<string, readonly RunEvent[]>,
  anomalies: readonly string[],
): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const digest: string[] = [];
  for (const run of runs) {
    if (!anomalies.some((anomaly) => anomaly.includes(run.id))) continue;
    const stored = events.get(run.id) ?? [];
    const lines = stored.map((event) => JSON.stringify(event));
    const { rows: jobs } = await db.query<Record<string, unknown>>(
      "select id, status, runner_id, refusals, result, created_at, updated_at from jobs where run_id = $1 order by created_at",
      [run.id],
    );
    lines.push(...jobs.map((job) => JSON.stringify({ job })));
    writeFileSync(join(dir, `${run.id}.jsonl`), `${lines.join("\n")}\n`);
    digest.push(`${run.id} (${run.name}):`);
    for (const event of stored) {
      if (event.type !== "step.output") digest.push(`  ${JSON.stringify(event)}`);
    }
    for (const { result: _result, ...job } of jobs) digest.push(`  job ${JSON.stringify(job)}`);
  }
  return digest;
}
