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

/** The stored events and jobs of every run an anomaly names, one `<dir>/<run>.jsonl` each. */
export async function keepRunsNamed(
  db: pg.Pool,
  dir: string,
  runs: readonly StoredRun[],
  events: ReadonlyMap<string, readonly RunEvent[]>,
  anomalies: readonly string[],
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const run of runs) {
    if (!anomalies.some((anomaly) => anomaly.includes(run.id))) continue;
    const lines = (events.get(run.id) ?? []).map((event) => JSON.stringify(event));
    const { rows: jobs } = await db.query(
      "select id, status, runner_id, result, created_at, updated_at from jobs where run_id = $1 order by created_at",
      [run.id],
    );
    lines.push(...jobs.map((job) => JSON.stringify({ job })));
    writeFileSync(join(dir, `${run.id}.jsonl`), `${lines.join("\n")}\n`);
  }
}
