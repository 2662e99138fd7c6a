import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, inject, it, onTestFinished } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { migrations } from "../src/store/migrations/index.js";
import { tempDir } from "./helpers/cli.js";
import { gauge } from "./helpers/parked-runs.js";
import { createTestDatabase } from "./helpers/postgres.js";
import { stepProcessGroup, until } from "./helpers/processes.js";
import { replicaFleet } from "./helpers/replica-fleet.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  lossTimings,
  readEvents,
  runnerToken,
  startCli,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { stepGate } from "./helpers/step-gate.js";

const adminUrl = inject("postgresAdminUrl");
const secretKey = "replica-test-secret-key-0123456789abcdef";

const fleet = replicaFleet({ secretKey });
const { replica, runner } = fleet;

/**
 * Two replicas on one database, started once for the tests that neither kill, stop nor restart
 * a replica; each such test starts its own runners in a group of its own (`group`), so no test
 * runs another's jobs, and leaves no run going. Their replica lease is the default 10 s: these
 * tests are not about how soon a death is seen, and a shared replica presumed dead on a busy
 * machine would fail every test after it.
 */
let shared: Promise<{ databaseUrl: string; a: TestServer; b: TestServer }> | undefined;
function sharedPair(): Promise<{ databaseUrl: string; a: TestServer; b: TestServer }> {
  shared ??= (async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const env = {
      RUNYARD_DATABASE_URL: databaseUrl,
      RUNYARD_SECRET_KEY: secretKey,
      RUNYARD_REPLICA_HEARTBEAT_MS: "300",
      RUNYARD_REPLICA_LEASE_MS: "10000",
    };
    const a = await startTestServer(tempDir(), env);
    const b = await startTestServer(tempDir(), env);
    return { databaseUrl, a, b };
  })();
  return shared;
}
afterAll(async () => {
  if (!shared) return;
  const { a, b } = await shared;
  await Promise.all([a.proc.kill("SIGKILL"), b.proc.kill("SIGKILL")]);
});

let groups = 0;
/** A runner group of the test's own on the shared pair. */
const group = (): string => `shared-${++groups}`;

async function health(url: string): Promise<{ replica: string; leader: boolean; database: string }> {
  return (await api<{ replica: string; leader: boolean; database: string }>(url, "GET", "/health")).body;
}

/** A run's events as an SSE client sees them, read while the run goes on. */
function follow(url: string, runId: string): Promise<RunEvent[]> {
  return readEvents(url, runId);
}

/**
 * Reads a run's SSE stream from `url` until it ends or its server goes away, resuming after
 * `lastEventId` when given; returns what it read.
 */
async function readUntilDropped(url: string, runId: string, lastEventId?: number): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  try {
    const response = await fetch(new URL(`/api/runs/${runId}/events?access_token=${adminToken}`, url), {
      headers: lastEventId === undefined ? {} : { "last-event-id": String(lastEventId) },
    });
    if (!response.body) return events;
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const data = buffer
          .slice(0, end)
          .split("\n")
          .find((line) => line.startsWith("data: "));
        if (data) events.push(JSON.parse(data.slice(6)) as RunEvent);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
      }
    }
  } catch {
    // The server went away mid-stream: the caller resumes elsewhere.
  }
  return events;
}

/** Waits until each of `runIds` has stored output (their steps run on the runners). */
async function untilOutput(databaseUrl: string, runIds: readonly string[]): Promise<void> {
  const count = runIds.length;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await client.query<{ runs: string }>(
        "select count(distinct run_id) as runs from run_events where type = 'step.output' and run_id = any($1)",
        [runIds],
      );
      if (Number(rows[0]?.runs) >= count) return;
      if (Date.now() > deadline) throw new Error(`only ${rows[0]?.runs} of ${count} runs have output`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await client.end();
  }
}

/** Waits until the run's newest job has one of `statuses`. */
async function untilJob(databaseUrl: string, runId: string, statuses: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await client.query<{ status: string }>(
        "select status from jobs where run_id = $1 order by created_at desc limit 1",
        [runId],
      );
      const now = rows[0]?.status;
      if (now && statuses.includes(now)) return;
      if (Date.now() > deadline)
        throw new Error(`the job of ${runId} is ${now ?? "not made"}, not ${statuses.join(" or ")}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await client.end();
  }
}

function lines(events: readonly RunEvent[]): string {
  return events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
}

/**
 * The run's start, each attempt's start and its output in the order they happened, whichever
 * replica's engine emitted the starts and whichever stored the runner's output.
 */
function expectStartsBeforeOutput(events: readonly RunEvent[]): void {
  const order = events.map((event) =>
    event.type === "step.started" || event.type === "step.output"
      ? `${event.type}:${event.step}`
      : event.type,
  );
  const runStarted = order.indexOf("run.started");
  expect(runStarted, order.join(" ")).toBeGreaterThan(0);
  for (const [index, entry] of order.entries()) {
    if (!entry.startsWith("step.")) continue;
    expect(index, `${entry} before run.started: ${order.join(" ")}`).toBeGreaterThan(runStarted);
    if (!entry.startsWith("step.output:")) continue;
    const step = entry.slice("step.output:".length);
    expect(order.slice(0, index), `${entry} before its step.started`).toContain(`step.started:${step}`);
  }
}

function expectInOrderOnce(events: readonly RunEvent[]): void {
  expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
  expect(events.at(-1)?.type).toBe("run.finished");
}

const counting = (lineCount: number, pause: string, runnerGroup?: string) => `
version: v0.1
name: counting
inventory:
  hosts:
    worker: {${runnerGroup ? `group: ${runnerGroup}` : ""}}
steps:
  - name: count
    targets: [worker]
    action: cmd.run
    args:
      cmd: for i in $(seq 1 ${lineCount}); do echo "line $i"; sleep ${pause}; done
`;

/**
 * A TCP proxy to a replica that can freeze: it then forwards nothing either way and keeps both
 * ends open, as a dropped route does; `release` closes the replica's end (the route comes back
 * and the replica hears the runner is gone).
 */
async function freezableProxy(targetPort: number): Promise<{
  url: string;
  freeze: () => void;
  release: () => void;
  close: () => Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let frozen = false;
  const server = createServer((client) => {
    const upstream = netConnect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => socket.destroy());
    }
    client.on("data", (data) => frozen || upstream.write(data));
    upstream.on("data", (data) => frozen || client.write(data));
    client.on("close", () => frozen || upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const release = (): void => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true;
    },
    release,
    close: () =>
      new Promise((resolve) => {
        release();
        server.close(() => resolve());
      }),
  };
}

/** Waits until the replica's gauge `name` says `expected`. */
async function untilGauge(url: string, name: string, expected: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await gauge(url, name);
    if (value === expected) return;
    if (Date.now() > deadline) throw new Error(`${name} stayed ${value}, not ${expected}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs a query on the test database. */
async function sql(databaseUrl: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

const quick = (runnerGroup: string) => `
version: v0.1
name: quick
inventory:
  hosts:
    worker: {group: ${runnerGroup}}
steps:
  - name: hello
    targets: [worker]
    action: cmd.run
    args:
      cmd: echo hello
`;

describe.skipIf(!adminUrl)("several server replicas on one PostgreSQL database", () => {
  it("runs a run submitted to A on a runner of B, followed on both: every line once and in order", async () => {
    const { a, b } = await sharedPair();
    const [aInfo, bInfo] = [await health(a.url), await health(b.url)];
    expect(aInfo.replica).not.toBe(bInfo.replica);
    expect([aInfo.leader, bInfo.leader].filter(Boolean)).toHaveLength(1);
    expect(aInfo.database).toBe("ok");

    const mine = group();
    await runner(b.url, await runnerToken(a.url, mine), "on-b");
    const runId = await submit(a.url, counting(20, "0.05", mine));
    const [onA, onB] = await Promise.all([follow(a.url, runId), follow(b.url, runId)]);
    const done = await waitForRun(b.url, runId, isFinal);
    expect(done.status).toBe("success");
    const expected = Array.from({ length: 20 }, (_, i) => `line ${i + 1}\n`).join("");
    for (const events of [onA, onB]) {
      expectInOrderOnce(events);
      expectStartsBeforeOutput(events);
      expect(lines(events)).toBe(expected);
    }
    expect(onB).toEqual(onA);

    // The fleet's runners (this test's: the pair is shared), with the replica each is on, from
    // either replica.
    for (const url of [a.url, b.url]) {
      const { body } = await api<Array<{ id: string; replica: string; status: string }>>(
        url,
        "GET",
        "/api/runners",
      );
      expect(body.filter((r) => r.id === "on-b")).toEqual([
        expect.objectContaining({ id: "on-b", replica: bInfo.replica, status: "connected" }),
      ]);
    }
  });

  it("keeps a step's output after its start while the replica carrying the run is slow to hear a runner took it up", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    // A replica lease far longer than A's pause: A is slow, not dead, and B must not adopt its
    // run (on a busy machine a runner's start alone took over 2 s, the lease of the others).
    const slow = { RUNYARD_REPLICA_LEASE_MS: "30000" };
    const a = await replica(databaseUrl, undefined, slow);
    const b = await replica(databaseUrl, undefined, slow);
    const runId = await submit(a.url, counting(3, "0"));
    // No runner yet: the job waits in the queue, made by A's engine.
    await untilJob(databaseUrl, runId, ["queued"]);
    // A stops (a long GC pause, a busy CPU) while B's runner takes the job up and prints.
    const pid = a.proc.child.pid ?? 0;
    process.kill(pid, "SIGSTOP");
    try {
      await runner(b.url, await runnerToken(b.url), "on-b");
      await untilJob(databaseUrl, runId, ["running", "done"]);
      // The pause itself: A hears nothing for a while after the runner took the job up.
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const done = await waitForRun(a.url, runId, isFinal);
    expect(done.status).toBe("success");
    const events = await readEvents(b.url, runId);
    expectInOrderOnce(events);
    expectStartsBeforeOutput(events);
    expect(lines(events)).toBe("line 1\nline 2\nline 3\n");
  }, 150_000);

  it("runs 200 runs through two replicas with runners on each, none twice", async () => {
    const { databaseUrl, a, b } = await sharedPair();
    const mine = group();
    const token = await runnerToken(a.url, mine);
    await runner(a.url, token, "runner-a", 8);
    await runner(b.url, token, "runner-b", 8);
    const ledgerDir = stepDir();
    const ledger = join(ledgerDir, "ledger");
    const workflow = `
version: v0.1
name: once
vars:
  N: ""
inventory:
  hosts:
    worker: {group: ${mine}}
steps:
  - name: note
    targets: [worker]
    action: cmd.run
    args:
      cwd: ${ledgerDir}
      cmd: echo "$N" >> ${ledger}
`;
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const { status, body } = await api<{ run_id: string }>(i % 2 ? b.url : a.url, "POST", "/api/runs", {
        kind: "workflow",
        workflow,
        vars: { N: String(i) },
      });
      expect(status).toBe(201);
      ids.push(body.run_id);
    }
    for (const [index, id] of ids.entries()) {
      const run = await waitForRun(index % 2 ? a.url : b.url, id, isFinal, 120_000);
      expect(run.status, id).toBe("success");
      // Half of them ran on a runner of the other replica than the one carrying the run.
      expectStartsBeforeOutput(await readEvents(a.url, id));
    }
    const written = readFileSync(ledger, "utf8").trim().split("\n").map(Number);
    expect(written).toHaveLength(200);
    expect(new Set(written).size).toBe(200);
    // Both runners took work: the claim spreads over the fleet.
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ runner_id: string; jobs: string }>(
        "select runner_id, count(*) as jobs from jobs where run_id = any($1) group by runner_id order by runner_id",
        [ids],
      );
      expect(rows.map((row) => row.runner_id)).toEqual(["runner-a", "runner-b"]);
    } finally {
      await client.end();
    }
  }, 240_000);

  it("loses no line and ends no run when a replica is killed -9 while 10 runs stream", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const aPort = await freePort();
    const a = await replica(databaseUrl, aPort);
    const b = await replica(databaseUrl);
    const token = await runnerToken(a.url);
    // Each runner knows both replicas, its own first.
    const onA = await runner(`${a.url},${b.url}`, token, "first-on-a", 6);
    await runner(`${b.url},${a.url}`, token, "first-on-b", 6);
    const runs: string[] = [];
    // Each prints 40 lines, waits at the gate until A is killed and its runner moved, then 40
    // more: every run still streams at the kill, however slow the machine.
    const gate = await stepGate();
    onTestFinished(() => gate.close());
    const gated = counting(40, "0.1").replace(
      /done\n$/,
      `done; ${gate.wait}; for i in $(seq 41 80); do echo "line $i"; sleep 0.1; done\n`,
    );
    for (let i = 0; i < 10; i++) runs.push(await submit(a.url, gated));
    // Followers on B, of runs whose engine is on A; and one on A, which will lose its server.
    const streams = runs.map((id) => follow(b.url, id));
    const onDoomed = readUntilDropped(a.url, runs[0] as string);
    await untilOutput(databaseUrl, runs);
    const killedAt = Date.now();
    await a.proc.kill("SIGKILL");

    // The runner that was on A moves to B within seconds.
    await onA.waitFor(`connected to ${b.url}`, 10_000);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    gate.open();

    const expected = Array.from({ length: 80 }, (_, i) => `line ${i + 1}\n`).join("");
    for (const [index, id] of runs.entries()) {
      const done = await waitForRun(b.url, id, isFinal, 60_000);
      expect(done.status, id).toBe("success");
      const events = await (streams[index] as Promise<RunEvent[]>);
      expectInOrderOnce(events);
      expect(lines(events), id).toBe(expected);
    }
    // The follower that was on A resumes on B with Last-Event-ID: every event once, in order.
    const before = await onDoomed;
    expect(before.length).toBeGreaterThan(0);
    expect(before.at(-1)?.type).not.toBe("run.finished");
    const after = await readUntilDropped(b.url, runs[0] as string, before.at(-1)?.seq);
    expectInOrderOnce([...before, ...after]);
    expect(lines([...before, ...after])).toBe(expected);
    // B adopted A's runs and leads now.
    expect((await health(b.url)).leader).toBe(true);
  }, 120_000);

  it("still expires leases and ends a lost runner's run within 30 s of the leader's kill -9", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    // The one test here about a runner's loss: the short lease and quick heartbeats of such tests
    // (helpers/server.ts).
    // The others keep the long one, so a runner slowed by a loaded machine loses no job.
    const loss = {
      RUNYARD_HEARTBEAT_MS: lossTimings.RUNYARD_HEARTBEAT_MS,
      RUNYARD_LEASE_MS: lossTimings.RUNYARD_LEASE_MS,
    };
    const a = await replica(databaseUrl, undefined, loss);
    const b = await replica(databaseUrl, undefined, loss);
    expect((await health(a.url)).leader).toBe(true);
    const doomed = await runner(b.url, await runnerToken(a.url), "doomed");
    const runId = await submit(b.url, counting(1000, "0.1"));
    await waitForRun(b.url, runId, (run) => run.status === "running");
    await a.proc.kill("SIGKILL");
    await doomed.kill("SIGKILL");
    const killedAt = Date.now();
    // B's takeover (a 2 s replica lease) and then the runner's 2 s lease: 30 s on a loaded machine,
    // where a B that never swept leases, or never led, leaves the run running forever.
    const done = await waitForRun(b.url, runId, isFinal, 30_000);
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    expect(done.status).toBe("interrupted");
    expect(done.error?.code).toBe("RUNNER_LOST");
    expect((await health(b.url)).leader).toBe(true);
  }, 90_000);

  it("refuses to start a replica whose secret key differs from the fleet's", async () => {
    const { databaseUrl } = await sharedPair();
    const stranger = startCli(["server", "--port", "0", "--home", tempDir()], {
      RUNYARD_DATABASE_URL: databaseUrl,
      RUNYARD_SECRET_KEY: "another-secret-key-of-enough-length-0123",
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    fleet.track(stranger);
    // It exits as soon as it said why, holding no connection open behind it (it once lingered
    // for the pool's idle timeout, 10 s, with its error already printed).
    await stranger.waitFor("cannot be decrypted", 60_000);
    const refused = Date.now();
    expect(await stranger.exited).not.toBe(0);
    expect(Date.now() - refused).toBeLessThan(5000);
    expect(stranger.output()).toMatch(/SECRET_KEY_MISMATCH|secret key/i);
    expect(stranger.output()).not.toContain("listening on");
  });

  it("applies the migrations once when two replicas start at the same moment on an empty database", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const [a, b] = await Promise.all([replica(databaseUrl), replica(databaseUrl)]);
    expect((await health(a.url)).database).toBe("ok");
    expect((await health(b.url)).database).toBe("ok");
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string }>(
        "select name from runyard_migration order by name",
      );
      expect(rows.map((row) => row.name)).toEqual(Object.keys(migrations).sort());
      const admins = await client.query("select id from tokens where kind = 'admin'");
      expect(admins.rowCount).toBe(1);
    } finally {
      await client.end();
    }
  });

  it("cancels through B a run whose engine lives on A and whose step runs on B's runner", async () => {
    const { databaseUrl, a, b } = await sharedPair();
    const mine = group();
    await runner(b.url, await runnerToken(a.url, mine), `holder-${mine}`);
    const runId = await submit(a.url, counting(1000, "0.1", mine));
    await untilOutput(databaseUrl, [runId]);
    const asked = Date.now();
    const { status } = await api(b.url, "POST", `/api/runs/${runId}/cancel`);
    expect(status).toBe(200);
    // A stops the engine, B's runner stops the step and reports it: well before the 15 s the
    // server waits for a runner that never answers a cancel.
    const done = await waitForRun(b.url, runId, isFinal, 12_000);
    expect(Date.now() - asked).toBeLessThan(12_000);
    expect(done.status).toBe("canceled");
    expect(done.steps[0]?.status).toBe("canceled");
  });

  it("cancels a run whose replica missed the cancel-run message (the stored request is swept)", async () => {
    const { databaseUrl, a } = await sharedPair();
    const mine = group();
    await runner(a.url, await runnerToken(a.url, mine), `holder-${mine}`);
    const runId = await submit(a.url, counting(1000, "0.1", mine));
    await waitForRun(a.url, runId, (run) => run.status === "running");
    // What POST /api/runs/:id/cancel on another replica stores, with its NOTIFY lost (the
    // carrying replica's fleet connection was reconnecting when it was sent).
    await sql(databaseUrl, "update runs set cancel_requested_at = $1 where id = $2", [
      new Date().toISOString(),
      runId,
    ]);
    const done = await waitForRun(a.url, runId, isFinal, 10_000);
    expect(done.status).toBe("canceled");
  });

  it("keeps a runner online, and its jobs cancelable, when the replica it left hears of it late", async () => {
    const { a, b } = await sharedPair();
    const proxy = await freezableProxy(Number(new URL(a.url).port));
    try {
      const dir = stepDir();
      const mine = group();
      const mover = await runner(`${proxy.url},${b.url}`, await runnerToken(a.url, mine), `mover-${mine}`);
      // The step outlasts anything the test waits for: only a cancel that reaches it ends it.
      const runId = await submit(
        a.url,
        `
version: v0.1
name: silent
inventory:
  hosts:
    worker: {group: ${mine}}
steps:
  - name: wait
    targets: [worker]
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        touch ${dir}/started
        sleep 60
        touch ${dir}/survived
`,
      );
      await until("the step started", () => existsSync(join(dir, "started")));
      // The route to A drops: the runner hears nothing for its silence limit (a third of the
      // 15 s lease: 5 s) and moves to B.
      proxy.freeze();
      await mover.waitFor(`connected to ${b.url}`, 15_000);
      // The route comes back: A hears only now that its socket to the runner closed, and a
      // moment later acts on it.
      proxy.release();
      await untilGauge(a.url, "runyard_replica_runners_connected", 0);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const { body } = await api<Array<{ id: string; status: string; replica: string }>>(
        b.url,
        "GET",
        "/api/runners",
      );
      expect(body.find((r) => r.id === `mover-${mine}`)).toEqual(
        expect.objectContaining({ status: "connected", replica: (await health(b.url)).replica }),
      );
      // The engine is on A; the runner on B must get the cancel and stop the step.
      expect((await api(a.url, "POST", `/api/runs/${runId}/cancel`)).status).toBe(200);
      expect((await waitForRun(a.url, runId, isFinal, 20_000)).status).toBe("canceled");
      // The step is stopped, not only the run ended: no process of it is left to write `survived`.
      await until("no process of the step is left", () => stepProcessGroup(dir) === undefined);
      expect(existsSync(join(dir, "survived"))).toBe(false);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("adopts every run of a killed replica when one of them cannot be carried on", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const a = await replica(databaseUrl);
    const b = await replica(databaseUrl);
    await runner(`${a.url},${b.url}`, await runnerToken(a.url), "both", 4);
    // The older run's stored events no longer read back; the newer one is fine.
    const broken = await submit(a.url, counting(100, "0.1"));
    const healthy = await submit(a.url, counting(30, "0.1"));
    await untilOutput(databaseUrl, [broken, healthy]);
    await sql(databaseUrl, "update run_events set data = '{}' where run_id = $1 and seq = 1", [broken]);
    await a.proc.kill("SIGKILL");
    expect((await waitForRun(b.url, healthy, isFinal, 30_000)).status).toBe("success");
    expect((await waitForRun(b.url, broken, isFinal, 5_000)).status).toBe("interrupted");
  }, 60_000);

  it("keeps a replica whose clock is behind the leader's, and adopts from one whose clock is ahead", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    // B's clock runs 5 s behind A's, C's 60 s ahead: more than their replica lease of 4 s (the
    // fleet's 2 s was shorter than one heartbeat's write on a busy machine, and B, slow but
    // alive, was presumed dead for that).
    const lease = { RUNYARD_REPLICA_LEASE_MS: "4000" };
    const a = await replica(databaseUrl, undefined, lease);
    expect((await health(a.url)).leader).toBe(true);
    const skew = (ms: number): Record<string, string> => {
      const file = join(tempDir(), "skew.cjs");
      writeFileSync(
        file,
        `const Real = Date;
class Skewed extends Real {
  constructor(...args) { if (args.length === 0) super(Real.now() + ${ms}); else super(...args); }
  static now() { return Real.now() + ${ms}; }
}
globalThis.Date = Skewed;
`,
      );
      return { NODE_OPTIONS: `--require ${file}` };
    };
    const start = (ms: number): Promise<TestServer> =>
      replica(databaseUrl, undefined, { ...skew(ms), ...lease });
    const b = await start(-5000);
    const c = await start(60_000);
    await runner(a.url, await runnerToken(a.url), "on-a");
    const runId = await submit(c.url, counting(1000, "0.1"));
    await waitForRun(a.url, runId, (run) => run.status === "running");
    await new Promise((resolve) => setTimeout(resolve, 4000));
    // B is alive: it must not be presumed dead (and exit) for its clock.
    expect(b.proc.output()).not.toContain("presumed this server dead");
    expect((await health(b.url)).database).toBe("ok");
    // C dies: its run is adopted within a few leases, not when C's clock says so (60 s on).
    await c.proc.kill("SIGKILL");
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { rows } = await sql(databaseUrl, "select replica_id from runs where id = $1", [runId]);
      const holder = rows[0]?.replica_id;
      if (holder === (await health(a.url)).replica || holder === (await health(b.url)).replica) break;
      if (Date.now() > deadline) throw new Error(`run ${runId} still carried by ${holder}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Three replicas and a runner, each a process: on a machine loaded by the rest of the suite
    // their starts alone took most of a minute.
  }, 120_000);

  it("takes the lead from a leader whose host vanished without closing its database sessions", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    // A reaches PostgreSQL through a route that can drop; B directly.
    const route = await freezableProxy(Number(new URL(databaseUrl).port));
    try {
      const viaRoute = new URL(databaseUrl);
      viaRoute.port = new URL(route.url).port;
      const a = await replica(viaRoute.toString());
      const b = await replica(databaseUrl);
      expect((await health(a.url)).leader).toBe(true);
      // A's host is gone (power cut, partition): its sessions stay open on the database side.
      route.freeze();
      await a.proc.kill("SIGKILL");
      const deadline = Date.now() + 20_000;
      while (!(await health(b.url)).leader) {
        if (Date.now() > deadline) throw new Error("B never took the lead");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    } finally {
      await route.close();
    }
  }, 60_000);

  it("cancels no run for a cancel-run message that any database session can send", async () => {
    const { databaseUrl, a } = await sharedPair();
    const mine = group();
    await runner(a.url, await runnerToken(a.url, mine), `holder-${mine}`);
    const runId = await submit(a.url, counting(1000, "0.1", mine));
    const witness = await submit(a.url, counting(1000, "0.1", mine));
    for (const id of [runId, witness]) await waitForRun(a.url, id, (run) => run.status === "running");
    // NOTIFY needs no privilege: a session of any role that may connect can send this.
    const forged = JSON.stringify({ type: "cancel-run", run_id: runId, from: "forger" });
    await sql(databaseUrl, "select pg_notify('runyard_fleet', $1)", [forged]);
    // Then a cancel of the witness as another replica asks it (its request stored, then the
    // message): A hears the messages in order, so once the witness ended canceled, A has long
    // acted on the forged one.
    await sql(databaseUrl, "update runs set cancel_requested_at = $1 where id = $2", [
      new Date().toISOString(),
      witness,
    ]);
    const asked = JSON.stringify({ type: "cancel-run", run_id: witness, from: "another-replica" });
    await sql(databaseUrl, "select pg_notify('runyard_fleet', $1)", [asked]);
    expect((await waitForRun(a.url, witness, isFinal)).status).toBe("canceled");
    expect((await api<{ status: string }>(a.url, "GET", `/api/runs/${runId}`)).body.status).toBe("running");
    expect((await api(a.url, "POST", `/api/runs/${runId}/cancel`)).status).toBe(200);
    expect((await waitForRun(a.url, runId, isFinal)).status).toBe("canceled");
  });

  it("reads no more from the store for an events message naming a seq that is not stored", async () => {
    const { databaseUrl, a, b } = await sharedPair();
    const mine = group();
    await runner(a.url, await runnerToken(a.url, mine), `holder-${mine}`);
    const runId = await submit(a.url, counting(1000, "0.5", mine));
    await waitForRun(a.url, runId, (run) => run.status === "running");
    // A follower on B, which does not carry the run.
    const controller = new AbortController();
    const response = await fetch(new URL(`/api/runs/${runId}/events?access_token=${adminToken}`, b.url), {
      signal: controller.signal,
    });
    void response.body?.pipeTo(new WritableStream()).catch(() => undefined);
    const transactions = async (): Promise<number> =>
      Number(
        (
          await sql(
            databaseUrl,
            "select xact_commit from pg_stat_database where datname = current_database()",
          )
        ).rows[0]?.xact_commit,
      );
    const during = async (ms: number): Promise<number> => {
      const before = await transactions();
      await new Promise((resolve) => setTimeout(resolve, ms));
      return (await transactions()) - before;
    };
    try {
      const quiet = await during(2000);
      const forged = JSON.stringify({ type: "events", run_id: runId, seq: 1_000_000_000, from: "forger" });
      await sql(databaseUrl, "select pg_notify('runyard_fleet', $1)", [forged]);
      const after = await during(2000);
      expect(after).toBeLessThan(quiet * 3 + 100);
    } finally {
      controller.abort();
      // The pair is shared: no run of this test goes on after it.
      await api(a.url, "POST", `/api/runs/${runId}/cancel`);
      await waitForRun(a.url, runId, isFinal);
    }
  });

  it("never leaves a job with a runner that moved to another replica while the old one still sees it", async () => {
    const { a, b } = await sharedPair();
    const proxy = await freezableProxy(Number(new URL(a.url).port));
    try {
      const mine = group();
      const mover = await runner(`${proxy.url},${b.url}`, await runnerToken(a.url, mine), `mover-${mine}`);
      proxy.freeze();
      await mover.waitFor(`connected to ${b.url}`, 10_000);
      // A's socket to the runner is half-open: A still counts the runner as its own.
      const runs: string[] = [];
      for (let i = 0; i < 4; i++) runs.push(await submit(a.url, quick(mine)));
      for (const id of runs) {
        const done = await waitForRun(b.url, id, isFinal, 20_000);
        expect(done.status, id).toBe("success");
      }
    } finally {
      await proxy.close();
    }
  }, 60_000);
});

describe("a replica's database", () => {
  it("names the host it cannot reach, without a stack", async () => {
    const port = await freePort();
    const proc = startCli(
      ["server", "--port", "0", "--database", `postgres://runyard:pw@127.0.0.1:${port}/runyard`],
      {
        RUNYARD_SECRET_KEY: secretKey,
        RUNYARD_ADMIN_TOKEN: adminToken,
        // It would wait for the database first (test/database-wait.test.ts).
        RUNYARD_DATABASE_WAIT: "0",
      },
    );
    fleet.track(proc);
    expect(await proc.exited).not.toBe(0);
    expect(proc.output()).toContain(`cannot reach the PostgreSQL database at 127.0.0.1:${port}`);
    expect(proc.output()).not.toContain("pw@");
    expect(proc.output()).not.toMatch(/\n\s+at /);
  });
});
