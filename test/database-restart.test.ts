import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { ApiClient } from "../src/cli/api-client.js";
import { finalRunStatuses, type RunEvent } from "../src/core/events.js";
import { tempDir } from "./helpers/cli.js";
import { type PostgresCluster, startPostgresCluster } from "./helpers/postgres-cluster.js";
import { until } from "./helpers/processes.js";
import { adminToken, runnerToken } from "./helpers/server.js";
import { seededRandom } from "./soak/seeded-random.js";
import { type Fleet, startFleet } from "./soak/soak-fleet.js";
import { readLedger } from "./soak/soak-ledger.js";
import { storedEvents, storedJobs, storedRuns } from "./soak/soak-store.js";
import { judgeSoak } from "./soak/soak-verdict.js";
import { drawShape, soakWorkflow } from "./soak/soak-workflows.js";

/*
 * PostgreSQL restarted twice under two replicas and two runners while runs go through and
 * submits keep arriving: once by an operator's fast shutdown, once by kill -9 of its postmaster,
 * each started again a few seconds later. The fleet is the soak's (test/soak/soak-fleet.ts):
 * replicas and runners are real processes of the built CLI, replica leases of 2 s, runner leases
 * of 2 s, so an outage longer than a lease is covered.
 */

const adminUrl = inject("postgresAdminUrl");
/** How long PostgreSQL stays down each time. */
const outageMs = 4000;
/** Runs submitted but not finished, at most. */
const window = 12;

/** What one submit got, after its retries of 503 answers. */
interface Submitted {
  index: number;
  runId?: string;
  /** 503 answers before the last one. */
  unavailable: number;
  /** 503 answers that said it is not known whether the run was stored. */
  unknownOutcome: number;
  /** An answer that was neither 201 nor 503, or no answer at all. */
  failure?: string;
}

/** A 503 (or anything else) answered to a probe of `GET /api/runs?limit=1`, by replica. */
interface Probe {
  at: number;
  replica: number;
  status: number;
}

async function post(
  url: string,
  workflow: string,
  key: string,
): Promise<{ status: number; body: unknown; retryAfter: string | null }> {
  const response = await fetch(`${url}/api/runs`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${adminToken}`,
      "content-type": "application/json",
      // As the CLI and the web UI send it: one key per submit, the same on each retry.
      "idempotency-key": key,
    },
    body: JSON.stringify({ kind: "workflow", workflow }),
  });
  return {
    status: response.status,
    body: await response.json().catch(() => undefined),
    retryAfter: response.headers.get("retry-after"),
  };
}

/**
 * Submits one run to `url` with an Idempotency-Key of its own, sending it again with that key
 * after each 503 (and each 409 IDEMPOTENCY_KEY_IN_USE) as its Retry-After says.
 */
async function submit(url: string, index: number, workflow: string): Promise<Submitted> {
  const result: Submitted = { index, unavailable: 0, unknownOutcome: 0 };
  const key = `restart-${process.pid}-${index}`;
  for (;;) {
    let answer: Awaited<ReturnType<typeof post>>;
    try {
      answer = await post(url, workflow, key);
    } catch (error) {
      result.failure = `no answer: ${(error as Error).message} ${String((error as Error).cause ?? "")}`;
      return result;
    }
    if (answer.status === 201) {
      result.runId = (answer.body as { run_id: string }).run_id;
      return result;
    }
    const code = (answer.body as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (answer.status === 409 && code?.code === "IDEMPOTENCY_KEY_IN_USE" && answer.retryAfter !== null) {
      await sleep(Number(answer.retryAfter) * 1000);
      continue;
    }
    if (answer.status !== 503 || code?.code !== "STORE_UNAVAILABLE" || answer.retryAfter === null) {
      result.failure = `${answer.status} ${JSON.stringify(answer.body)} retry-after ${answer.retryAfter}`;
      return result;
    }
    result.unavailable++;
    if (code.message?.includes("not known")) result.unknownOutcome++;
    await sleep(Number(answer.retryAfter) * 1000);
  }
}

async function ready(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/health/ready`)).status === 200;
  } catch {
    return false;
  }
}

describe.skipIf(!adminUrl)("PostgreSQL restarted under a running fleet", () => {
  it("ends no replica, answers every submit, ends every run once and stores and streams every line once, through a fast shutdown and a kill -9 of the postmaster", async () => {
    // Commits durable as in production: the throwaway clusters' synchronous_commit=off loses
    // the last commits to a kill -9 of the postmaster, which a user's database would not.
    const cluster: PostgresCluster = await startPostgresCluster({ settings: { synchronous_commit: "on" } });
    const root = tempDir("runyard-pg-restart-");
    const ledger = join(root, "ledger");
    mkdirSync(ledger);
    const soakId = `restart-${randomBytes(4).toString("hex")}`;
    let fleet: Fleet | undefined;
    try {
      const databaseUrl = await cluster.createDatabase();
      fleet = await startFleet({
        databaseUrl,
        root,
        replicas: 2,
        runners: 2,
        capacity: 4,
        runnerToken: (url) => runnerToken(url),
      });
      const live = fleet;
      const urls = live.replicaUrls;

      // Every 100 ms each replica is asked a read that needs the database.
      const probes: Probe[] = [];
      let probing = true;
      const prober = (async () => {
        while (probing) {
          await Promise.all(
            urls.map(async (url, replica) => {
              const status = await fetch(`${url}/api/runs?limit=1`, {
                headers: { authorization: `Bearer ${adminToken}` },
              }).then(
                (response) => response.status,
                () => 0,
              );
              probes.push({ at: Date.now(), replica, status });
            }),
          );
          await sleep(100);
        }
      })();

      // Submits arrive all along, two at a time, one to each replica, at most `window` unfinished.
      const submitted: Submitted[] = [];
      const followed = new Map<string, Promise<RunEvent[]>>();
      const shapes = seededRandom(7, 1);
      let submitting = true;
      let next = 1;
      let answered = 0;
      /** Runs answered 201, and those of them the store says have ended. */
      const pendingRuns = new Set<string>();
      const finished = new Set<string>();
      const unfinished = (): number => pendingRuns.size - finished.size;
      const submitter = async (replica: number): Promise<void> => {
        const client = new ApiClient([urls[replica] as string], adminToken);
        while (submitting) {
          if (unfinished() >= window) {
            await sleep(100);
            continue;
          }
          const index = next++;
          const workflow = soakWorkflow(
            drawShape(shapes),
            index,
            { ledger, soakId },
            { lines: 10, pause: 0.1 },
          );
          const result = await submit(urls[replica] as string, index, workflow);
          submitted.push(result);
          answered++;
          if (result.runId) {
            const runId = result.runId;
            // Every third run is followed over SSE as `runyard runs logs -f` does.
            const events: RunEvent[] = [];
            if (index % 3 === 0) {
              followed.set(
                runId,
                client
                  .events(runId, { follow: true, onEvent: (event) => events.push(event) })
                  .then(() => events),
              );
            }
            pendingRuns.add(runId);
          }
        }
      };
      const watcher = new pg.Pool({ connectionString: databaseUrl, max: 1 });
      watcher.on("error", () => undefined);
      let watching = true;
      const watchFinished = (async () => {
        while (watching) {
          try {
            const { rows } = await watcher.query<{ id: string }>(
              "select id from runs where status = any($1)",
              [finalRunStatuses],
            );
            for (const row of rows) finished.add(row.id);
          } catch {
            // PostgreSQL is down: the count waits for it.
          }
          await sleep(200);
        }
      })();
      const submitters = [submitter(0), submitter(1)];

      const inFlight = async (least: number): Promise<void> => {
        await until(`${least} runs in flight`, () => unfinished() >= least, 30_000);
      };
      const restarts: Array<{ how: string; downAt: number; upAt: number; readyAt: number }> = [];
      const restart = async (how: string, stop: () => void): Promise<void> => {
        await inFlight(6);
        const downAt = Date.now();
        stop();
        await sleep(outageMs);
        await cluster.startAgain();
        const upAt = Date.now();
        const readyBy = Date.now() + 60_000;
        while (!(await Promise.all(urls.map(ready))).every(Boolean)) {
          if (Date.now() > readyBy) throw new Error(`the replicas were not ready 60 s after the ${how}`);
          await sleep(50);
        }
        restarts.push({ how, downAt, upAt, readyAt: Date.now() });
        console.log(
          `${how}: PostgreSQL down ${((upAt - downAt) / 1000).toFixed(1)} s; both replicas ready ${((Date.now() - upAt) / 1000).toFixed(1)} s after it took connections again`,
        );
      };
      await restart("fast shutdown", () => cluster.stopFast());
      const before = answered;
      await until("5 submits answered after the fast shutdown", () => answered >= before + 5, 60_000);
      await restart("kill -9 of the postmaster", () => void cluster.killPostmaster());
      const after = answered;
      await until("5 submits answered after the kill -9", () => answered >= after + 5, 60_000);
      submitting = false;
      await Promise.all(submitters);
      const endBy = Date.now() + 60_000;
      while (Date.now() < endBy && [...pendingRuns].some((runId) => !finished.has(runId))) await sleep(100);
      const stuck = [...pendingRuns].filter((runId) => !finished.has(runId));
      // What a stuck run was waiting on, so that a failure says where to look.
      const stuckState =
        stuck.length === 0
          ? ""
          : JSON.stringify(
              (
                await watcher.query(
                  `select r.id, r.status, r.replica_id, j.status as job, j.runner_id, j.lease_expires_at, j.updated_at
                   from runs r left join jobs j on j.run_id = r.id where r.id = any($1) order by r.id`,
                  [stuck],
                )
              ).rows,
            );
      // And what the fleet warned of meanwhile, the last few lines of each member.
      const warned =
        stuck.length === 0
          ? ""
          : live.members
              .map((member) => {
                const lines = member.proc().output().split("\n");
                const warnings = lines.filter((line) => /"level":(40|50)/.test(line)).slice(-6);
                return `${member.name}:\n  ${warnings.map((line) => line.slice(0, 400)).join("\n  ")}`;
              })
              .join("\n");
      expect(
        stuck,
        `runs that did not end within 60 s of the last restart: ${stuckState}\n${warned}`,
      ).toEqual([]);
      watching = false;
      await watchFinished;
      await watcher.end();
      probing = false;
      await prober;
      const streams = new Map<string, RunEvent[]>();
      for (const [runId, events] of followed) streams.set(runId, await events);

      // No replica nor runner ended on its own.
      for (const member of live.members) expect(member.exitedOnItsOwn(), member.name).toBeUndefined();

      // Every submit was answered: 201, after 503s retried; none was refused otherwise.
      expect(submitted.filter((s) => s.failure).map((s) => `#${s.index}: ${s.failure}`)).toEqual([]);

      // How long the API answered 503 around each restart, by replica.
      const figures: string[] = [];
      for (const [i, restart] of restarts.entries()) {
        const end = restarts[i + 1]?.downAt ?? Date.now();
        for (const replica of urls.keys()) {
          const refused = probes.filter(
            (p) => p.replica === replica && p.at >= restart.downAt && p.at < end && p.status !== 200,
          );
          const other = refused.filter((p) => p.status !== 503);
          expect(
            other.map((p) => p.status),
            `replica ${replica + 1} answered other than 200/503`,
          ).toEqual([]);
          const first = refused[0]?.at ?? restart.downAt;
          const last = refused.at(-1)?.at ?? restart.downAt;
          figures.push(
            `${restart.how}: replica-${replica + 1} answered 503 from +${((first - restart.downAt) / 1000).toFixed(1)} s to +${((last - restart.downAt) / 1000).toFixed(1)} s after the stop (${((last - first) / 1000).toFixed(1)} s), PostgreSQL down ${((restart.upAt - restart.downAt) / 1000).toFixed(1)} s (until pg_ctl start returned)`,
          );
        }
      }
      console.log(figures.join("\n"));

      // Every run the store holds was answered 201, but for a 503 that said its outcome is not known.
      const db2 = new pg.Pool({ connectionString: databaseUrl, max: 2 });
      try {
        const runs = await storedRuns(db2, urls[0] as string);
        const answeredIds = new Set(submitted.flatMap((s) => (s.runId ? [s.runId] : [])));
        for (const runId of answeredIds)
          expect(
            runs.some((run) => run.id === runId),
            runId,
          ).toBe(true);
        const unknown = submitted.reduce((sum, s) => sum + s.unknownOutcome, 0);
        expect(runs.length).toBeGreaterThanOrEqual(answeredIds.size);
        expect(runs.length).toBeLessThanOrEqual(answeredIds.size + unknown);

        // Every run ended once, every line stored once, no step attempt lost or run twice.
        const events = await storedEvents(db2);
        const verdict = judgeSoak({
          runs,
          events,
          jobs: await storedJobs(db2),
          ledger: readLedger(ledger),
          kills: [],
        });
        expect(verdict.anomalies).toEqual([]);
        // Every SSE client saw each of its run's events once, in order, to run.finished.
        for (const [runId, seen] of streams) {
          const stored = events.get(runId) ?? [];
          expect(
            seen.map((e) => e.seq),
            runId,
          ).toEqual(stored.map((e) => e.seq));
        }
        console.log(
          `${runs.length} runs (${Object.entries(verdict.outcomes)
            .map(([outcome, count]) => `${count} ${outcome}`)
            .join(
              ", ",
            )}), ${verdict.linesStored} lines, ${streams.size} followed over SSE; submits answered 503 ${submitted.reduce((sum, s) => sum + s.unavailable, 0)} times`,
        );
      } finally {
        await db2.end();
      }
    } finally {
      if (fleet) await Promise.all(fleet.members.map((member) => member.kill()));
      cluster.stopSync();
    }
  }, 240_000);
});
