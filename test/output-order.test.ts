import pg from "pg";
import { afterEach, describe, expect, inject, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import { type PostgresCluster, startPostgresCluster } from "./helpers/postgres-cluster.js";
import { replicaFleet } from "./helpers/replica-fleet.js";
import {
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startProxy,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");

// The replicas presume one another dead only after a minute: the replica whose database is away
// here must stay the run's carrier, not hand it to the other by adoption.
const fleet = replicaFleet({ secretKey: "output-order-secret-key-0123456789abcdef", leaseMs: 60_000 });

const counting = `
version: v0.1
name: counting
inventory:
  hosts:
    worker: {}
steps:
  - name: count
    targets: [worker]
    action: cmd.run
    args:
      cmd: for i in 1 2 3; do echo "line $i"; done
`;

/** The first row of `text` on the test database, or undefined. */
async function queryRow<T>(databaseUrl: string, text: string, values: unknown[]): Promise<T | undefined> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query(text, values)).rows[0] as T | undefined;
  } finally {
    await client.end();
  }
}

/** Waits until `done` says so, reading again every 50 ms for up to 30 s. */
async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Each step's output comes after its `step.started`, and every step event after `run.started`. */
function expectStartsBeforeOutput(events: readonly RunEvent[]): void {
  const order = events.map((event) =>
    event.type === "step.started" || event.type === "step.output"
      ? `${event.type}:${event.step}`
      : `${event.type}`,
  );
  const runStarted = order.indexOf("run.started");
  expect(runStarted, order.join(" ")).toBeGreaterThan(0);
  for (const [index, entry] of order.entries()) {
    if (!entry.startsWith("step.")) continue;
    expect(index, `${entry} before run.started: ${order.join(" ")}`).toBeGreaterThan(runStarted);
    if (!entry.startsWith("step.output:")) continue;
    const step = entry.slice("step.output:".length);
    expect(order.slice(0, index), `${entry} before its step.started: ${order.join(" ")}`).toContain(
      `step.started:${step}`,
    );
  }
}

describe.skipIf(!adminUrl)("a step's output and its start, when the database is away", () => {
  it("stores a step's output after its step.started while the replica carrying the run has lost its database", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    // A reaches PostgreSQL through a route the test stops and starts again, as a restart of the
    // database looks from A; B and its runner reach it directly.
    const route = await startProxy(Number(new URL(databaseUrl).port));
    try {
      const viaRoute = new URL(databaseUrl);
      viaRoute.port = String(route.port);
      const a = await fleet.replica(viaRoute.toString());
      const b = await fleet.replica(databaseUrl);
      const runId = await submit(a.url, counting);
      // No runner yet: A's engine has queued the job and waits for a runner to take it up.
      await until("the job is queued", async () =>
        Boolean(await queryRow(databaseUrl, "select id from jobs where run_id = $1", [runId])),
      );
      // A's database goes away now, before any runner has taken the step: A cannot store the
      // run's start nor the step's while B's runner takes the job up and prints its lines.
      route.down();
      await fleet.runner(b.url, await runnerToken(b.url), "on-b");
      // B has the lines in hand and has decided about them: stored (they would precede the
      // step's start) or held until the start is stored.
      await until("B stored or held the step's output", async () => {
        if (b.proc.output().includes("held a job's output")) return true;
        const output = await queryRow(
          databaseUrl,
          "select seq from run_events where run_id = $1 and type = 'step.output' limit 1",
          [runId],
        );
        return output !== undefined;
      });
      // The database is back for A: its engine stores the run's start and the step's.
      route.up();
      const done = await waitForRun(b.url, runId, isFinal, 60_000);
      expect(done.status).toBe("success");
      const events = await readEvents(b.url, runId);
      expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
      expectStartsBeforeOutput(events);
      const lines = events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
      expect(lines).toBe("line 1\nline 2\nline 3\n");
    } finally {
      await route.close();
    }
  }, 90_000);
});

/**
 * A server on a cluster of its own, a run whose engine's write of the run's start waits on the
 * run's row (locked here, as a write is that PostgreSQL has not answered when it stops), and a
 * runner that has taken the run's job up meanwhile.
 */
async function startWaitingOnTheRunsRow(
  procs: Proc[],
  runnerId: string,
): Promise<{ cluster: PostgresCluster; server: TestServer; runId: string }> {
  const cluster = await startPostgresCluster({ settings: { synchronous_commit: "on" } });
  const databaseUrl = await cluster.createDatabase();
  const server = await startTestServer(tempDir(), { RUNYARD_DATABASE_URL: databaseUrl });
  procs.push(server.proc);
  const runId = await submit(server.url, counting);
  await until("the job is queued", async () =>
    Boolean(await queryRow(databaseUrl, "select id from jobs where run_id = $1", [runId])),
  );
  const holder = new pg.Client({ connectionString: databaseUrl });
  holder.on("error", () => undefined);
  await holder.connect();
  await holder.query("begin");
  await holder.query("select id from runs where id = $1 for update", [runId]);
  const held = (await holder.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]?.pid;
  procs.push(await startRunner(server.url, await runnerToken(server.url), { id: runnerId }));
  await until("the engine's write of the start waits on the run's row", async () =>
    Boolean(
      await queryRow(
        databaseUrl,
        "select pid from pg_stat_activity where wait_event_type = 'Lock' and query like '%appendRunEvents%' and pid <> $1",
        [held],
      ),
    ),
  );
  return { cluster, server, runId };
}

/** The run ends `success`, its seqs dense and each step's output after its start; its events. */
async function expectSucceededInOrder(url: string, runId: string): Promise<RunEvent[]> {
  const done = await waitForRun(url, runId, isFinal, 60_000);
  const events = await readEvents(url, runId);
  expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
  expectStartsBeforeOutput(events);
  expect(done.status).toBe("success");
  return events;
}

describe.skipIf(!adminUrl)("a step's output and its start, when PostgreSQL restarts", () => {
  const procs: Proc[] = [];
  let cluster: PostgresCluster | undefined;
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((proc) => proc.kill("SIGKILL")));
    await cluster?.stop();
    cluster = undefined;
  });

  it("stores a step's output after its step.started when PostgreSQL stops while the run's start is being written", async () => {
    const started = await startWaitingOnTheRunsRow(procs, "restart-runner");
    ({ cluster } = started);
    const { server, runId } = started;
    // PostgreSQL stops (an operator's restart) with that write unanswered, and starts again.
    cluster.stopFast();
    await cluster.startAgain();
    await expectSucceededInOrder(server.url, runId);
  }, 120_000);

  it("goes on from its stored events once PostgreSQL is back, when PostgreSQL stayed down longer than the engine waits to store the run's start", async () => {
    const started = await startWaitingOnTheRunsRow(procs, "gave-up-runner");
    ({ cluster } = started);
    const { server, runId } = started;
    // PostgreSQL stops and stays down past the 10 s a write of the engine's waits for it: the
    // engine gives up on that write (the run's start and the step's), which before left the run
    // running for good, the runner's output for it refused at every try.
    cluster.stopFast();
    // Its own retries take the 10 s; a loaded 2-core machine has taken past 30 s to log it (the
    // test's timeout is the net).
    await server.proc.waitFor("a run's engine lost the database", 100_000);
    await cluster.startAgain();
    const events = await expectSucceededInOrder(server.url, runId);
    const lines = events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
    expect(lines).toBe("line 1\nline 2\nline 3\n");
  }, 120_000);
});
