import { join } from "node:path";
import Database from "better-sqlite3";
import { admin, serverProcess } from "./server.js";
import type { BenchRow } from "./table.js";

const schedules = 1000;
const measuredMs = 30_000;

/**
 * The scheduler's cost with 1,000 schedules: `runyard server` (SQLite, no runner) with 1,000
 * saved workflows, schedule i firing every 10 s at second i mod 10 (100 ticks a second). The
 * first tick of each starts a run, which stays queued; later ones are skipped for overlap (a
 * row each, like a fired tick). Lateness is a tick row's insert time minus the tick's time, over
 * 30 s of ticks after the saves; the target is p99 within 1 s.
 */
export async function scheduleTicks1000(): Promise<BenchRow> {
  // Each schedule fires every 10 s: below the default floor of a minute, so the bench lowers it.
  const server = await serverProcess({ RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS: "1" });
  try {
    const started = Date.now();
    for (let i = 0; i < schedules; i++) {
      const workflow = `name: s${i}\nschedule: {cron: "${i % 10}-59/10 * * * * *"}\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n`;
      const response = await fetch(`${server.url}/api/workflows`, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ name: `s${i}`, workflow }),
      });
      if (response.status !== 201)
        throw new Error(`save failed: ${response.status} ${await response.text()}`);
    }
    const savedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, measuredMs));
    const db = new Database(join(server.home, "runyard.db"), { readonly: true, fileMustExist: true });
    const rows = db
      .prepare("select tick_at, created_at, outcome from schedule_ticks where tick_at >= ?")
      .all(new Date(savedAt).toISOString()) as Array<{
      tick_at: string;
      created_at: string;
      outcome: string;
    }>;
    db.close();
    const late = rows
      .map((row) => Date.parse(row.created_at) - Date.parse(row.tick_at))
      .sort((a, b) => a - b);
    const at = (q: number) => late[Math.min(late.length - 1, Math.floor(q * late.length))] ?? Number.NaN;
    const fired = rows.filter((row) => row.outcome === "started").length;
    const p99 = at(0.99);
    return {
      name: `scheduler, ${schedules} schedules (100 ticks/s): tick lateness p50 / p99`,
      measured: `${at(0.5)} / ${p99} ms (${rows.length} ticks, ${fired} runs started; saves took ${((savedAt - started) / 1000).toFixed(1)} s)`,
      baseline: "1000 ms",
      ratio: p99 / 1000,
      target: "<= 1",
    };
  } finally {
    server.child.kill();
  }
}
