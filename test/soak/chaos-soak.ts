import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { finalRunStatuses } from "../../src/core/events.js";
import { createDatabase } from "../helpers/postgres-cluster.js";
import { api, runnerToken } from "../helpers/server.js";
import { startKillSchedule } from "./kill-schedule.js";
import { processesWithEnv } from "./process-tree.js";
import { seededRandom } from "./seeded-random.js";
import { type Fleet, startFleet } from "./soak-fleet.js";
import { readLedger } from "./soak-ledger.js";
import { keepRunsNamed, storedEvents, storedJobs, storedRuns } from "./soak-store.js";
import { judgeSoak, type Verdict } from "./soak-verdict.js";
import { drawShape, soakWorkflow } from "./soak-workflows.js";

/** What a soak is asked to do; the CI test and `npm run soak` differ only in these. */
export interface SoakParameters {
  /** Runs to submit. */
  runs: number;
  /** A random replica or runner is killed -9 this often (then started again). */
  killEveryMs: number;
  /** Picks the victims and the runs' workflows (RUNYARD_SOAK_SEED replays them). */
  seed: number;
  /** The PostgreSQL cluster's admin URL; the soak makes a database of its own on it. */
  adminUrl: string;
  /** Runs submitted but not finished, at most (default 24). */
  window?: number;
  /** Lines each step attempt prints (default 8), and seconds between two (default 0.05). */
  lines?: number;
  pause?: number;
  /** No run finishing for this long stops the chaos and is reported (default 120 s). */
  stallMs?: number;
  /** Progress lines (the seed first). */
  log?: (line: string) => void;
}

export interface SoakReport {
  seed: number;
  /** Runs the store holds at the end (a submit whose answer was lost to a kill may add one). */
  runs: number;
  kills: { replica: number; runner: number };
  durationMs: number;
  /** Stored runs per second, from the first submit to the last run's end. */
  runsPerSecond: number;
  verdict: Verdict;
  /** Everything wrong, the verdict's and the fleet's (leftover processes, stuck runs, /health). */
  anomalies: string[];
  /** The soak's folder: ledgers, homes, and `timeline.txt` (kills, restarts, submit failures). */
  root: string;
}

const capacityPerRunner = 4;

export async function runChaosSoak(parameters: SoakParameters): Promise<SoakReport> {
  const log = parameters.log ?? (() => undefined);
  const window = parameters.window ?? 24;
  const stallMs = parameters.stallMs ?? 120_000;
  // Not tempDir's, which goes with the test file: a soak that found anomalies keeps its folder.
  const root = mkdtempSync(join(tmpdir(), "runyard-soak-"));
  let clean = false;
  const ledgerDir = join(root, "ledger");
  mkdirSync(ledgerDir);
  const soakId = `${parameters.seed}-${randomBytes(4).toString("hex")}`;
  const began = Date.now();
  const timeline: string[] = [];
  const note = (what: string): void => {
    timeline.push(`+${((Date.now() - began) / 1000).toFixed(1)}s ${new Date().toISOString()} ${what}`);
  };
  const anomalies: string[] = [];
  log(
    `chaos soak RUNYARD_SOAK_SEED=${parameters.seed} (set it to replay this soak's victims and runs), ${parameters.runs} runs, a kill -9 every ${parameters.killEveryMs / 1000} s; folder ${root}`,
  );

  const databaseUrl = await createDatabase(parameters.adminUrl, "runyard_soak");
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  let fleet: Fleet | undefined;
  let firstSubmitAt = 0;
  let lastFinishAt = 0;
  try {
    fleet = await startFleet({
      databaseUrl,
      root,
      replicas: 2,
      runners: 3,
      capacity: capacityPerRunner,
      runnerToken: (url) => runnerToken(url),
    });
    const live = fleet;
    note(
      `fleet up: ${live.members.map((member) => `${member.name} pid ${member.proc().child.pid}`).join(", ")}`,
    );

    const schedule = startKillSchedule({
      members: live.members,
      seed: parameters.seed,
      everyMs: parameters.killEveryMs,
      note,
      anomalies,
    });
    const kills = schedule.kills;

    const progress = async (): Promise<{ total: number; done: number }> => {
      const { rows } = await db.query<{ total: string; done: string }>(
        "select count(*) as total, count(*) filter (where status = any($1)) as done from runs",
        [finalRunStatuses],
      );
      return { total: Number(rows[0]?.total), done: Number(rows[0]?.done) };
    };

    // Submit through the HTTP API, keeping at most `window` runs unfinished, each to a replica
    // in turn (the other one when it is down).
    const shapes = seededRandom(parameters.seed, 1);
    const options = { lines: parameters.lines ?? 8, pause: parameters.pause ?? 0.05 };
    let lastDone = 0;
    let lastChangeAt = Date.now();
    let stalled = false;
    const watch = async (): Promise<{ total: number; done: number }> => {
      const now = await progress();
      if (now.done !== lastDone) {
        lastDone = now.done;
        lastChangeAt = Date.now();
        lastFinishAt = Date.now();
      } else if (now.done < now.total && Date.now() - lastChangeAt > stallMs) {
        stalled = true;
      }
      return now;
    };
    let lastLog = Date.now();
    firstSubmitAt = Date.now();
    for (let index = 1; index <= parameters.runs && !stalled; index++) {
      const workflow = soakWorkflow(drawShape(shapes), index, { ledger: ledgerDir, soakId }, options);
      while (!stalled) {
        const now = await watch();
        if (now.total - now.done < window) break;
        await sleep(100);
      }
      await submitRun(live, index, workflow, note, anomalies);
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        log(`  ${index} submitted, ${lastDone} finished, ${kills.length} kills`);
      }
    }
    for (;;) {
      const now = await watch();
      if (now.done === now.total || stalled) break;
      await sleep(200);
    }
    if (stalled) {
      anomalies.push(
        `no run finished for ${stallMs / 1000} s (${lastDone} finished); the chaos stopped there`,
      );
      note("stalled: chaos stops");
    }
    await schedule.stop();
    note("chaos over; every member is up");

    // Stuck runs: once nothing is killed any more, every run must end within a few leases.
    const settleUntil = Date.now() + 30_000;
    while (Date.now() < settleUntil) {
      const now = await watch();
      if (now.done === now.total) break;
      await sleep(200);
    }
    const { rows: stuck } = await db.query<{ id: string; name: string; status: string }>(
      "select id, name, status from runs where not (status = any($1)) order by created_at",
      [finalRunStatuses],
    );
    for (const run of stuck)
      anomalies.push(`run ${run.id} (${run.name}) is still ${run.status} 30 s after the chaos ended`);

    const answering: string[] = [];
    for (const url of live.replicaUrls) {
      const health = await api<{ ok?: boolean; database?: string }>(url, "GET", "/health").catch(
        (error: Error) => ({
          status: 0,
          body: { ok: false, database: error.message },
        }),
      );
      if (health.status !== 200 || health.body.ok !== true) {
        anomalies.push(`${url}/health answered ${health.status} ${JSON.stringify(health.body)}`);
      } else answering.push(url);
    }
    if (answering.length === 0)
      throw new Error(`no replica answers after the chaos:\n  ${anomalies.join("\n  ")}`);

    const runs = await storedRuns(db, answering[0] as string);
    const events = await storedEvents(db);
    const verdict = judgeSoak({
      runs,
      events,
      jobs: await storedJobs(db),
      ledger: readLedger(ledgerDir),
      kills,
    });
    anomalies.push(...verdict.anomalies);
    for (const line of await keepRunsNamed(db, join(root, "runs"), runs, events, verdict.anomalies))
      log(line);

    // The end: everything is killed -9 once more, and nothing it started may stay.
    for (const member of live.members) {
      const { left } = await member.kill();
      if (left.length > 0) {
        anomalies.push(
          `${member.name}, killed at the end: ${left.map((each) => `${each.pid} ${each.command}`).join("; ")} still ran 10 s later`,
        );
      }
    }
    fleet = undefined;
    const strays = processesWithEnv("SOAK_ID", soakId);
    for (const stray of strays)
      anomalies.push(`a step's process outlived the fleet: ${stray.pid} ${stray.command}`);

    const total = Object.values(verdict.outcomes).reduce((sum, count) => sum + count, 0);
    const durationMs = Date.now() - began;
    const busyMs = Math.max(1, (lastFinishAt || Date.now()) - firstSubmitAt);
    clean = anomalies.length === 0;
    return {
      seed: parameters.seed,
      runs: total,
      kills: {
        replica: kills.filter((kill) => kill.kind === "replica").length,
        runner: kills.filter((kill) => kill.kind === "runner").length,
      },
      durationMs,
      runsPerSecond: total / (busyMs / 1000),
      verdict,
      anomalies,
      root,
    };
  } finally {
    if (fleet) await Promise.all(fleet.members.map((member) => member.kill()));
    await db.end();
    writeFileSync(join(root, "timeline.txt"), `${timeline.join("\n")}\n`);
    if (clean) rmSync(root, { recursive: true, force: true });
  }
}

async function submitRun(
  fleet: Fleet,
  index: number,
  workflow: string,
  note: (what: string) => void,
  anomalies: string[],
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let attempt = 0; ; attempt++) {
    const url = fleet.replicaUrls[(index + attempt) % fleet.replicaUrls.length] as string;
    try {
      const { status, body } = await api<{ run_id?: string }>(url, "POST", "/api/runs", {
        kind: "workflow",
        workflow,
      });
      if (status === 201) return;
      note(`submit #${index} to ${url}: ${status} ${JSON.stringify(body)}`);
      if (status < 500) {
        anomalies.push(`submit #${index} to ${url} was refused: ${status} ${JSON.stringify(body)}`);
        return;
      }
    } catch (error) {
      note(`submit #${index} to ${url}: ${(error as Error).message} ${String((error as Error).cause ?? "")}`);
    }
    if (Date.now() > deadline) {
      anomalies.push(`run #${index} could not be submitted to any replica for 60 s`);
      return;
    }
    await sleep(200);
  }
}

/** The figures, one per line, for the test's output and `npm run soak`. */
export function formatSoakReport(report: SoakReport): string {
  const outcomes = Object.entries(report.verdict.outcomes)
    .sort(([, a], [, b]) => b - a)
    .map(([outcome, count]) => `${count} ${outcome}`)
    .join(", ");
  return [
    `chaos soak RUNYARD_SOAK_SEED=${report.seed}:`,
    `  runs: ${report.runs} (${outcomes})`,
    `  kills -9: ${report.kills.replica + report.kills.runner} (${report.kills.replica} replica, ${report.kills.runner} runner)`,
    `  duration: ${(report.durationMs / 1000).toFixed(1)} s; ${report.runsPerSecond.toFixed(2)} runs/s`,
    `  step attempts: ${report.verdict.attempts} (${report.verdict.cutShort} cut short by a kill); output lines stored: ${report.verdict.linesStored}`,
    `  anomalies: ${report.anomalies.length}`,
    ...report.anomalies.slice(0, 50).map((anomaly) => `    - ${anomaly}`),
    ...(report.anomalies.length > 50 ? [`    ... ${report.anomalies.length - 50} more`] : []),
    `  folder: ${report.root} (timeline.txt: kills, restarts, submit failures; logs/: each life's output; runs/: the events of each run named above)`,
  ].join("\n");
}
