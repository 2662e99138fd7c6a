import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { knownRun, rememberRun } from "../src/store/known-runs.js";
import { openPostgresStore } from "../src/store/postgres.js";
import type { Store } from "../src/store/types.js";
import {
  expectContiguous,
  knownStatementSpy,
  output,
  outputBytes,
  stepFinished,
  ts,
} from "./helpers/appended-events.js";
import { createDatabase } from "./helpers/postgres-cluster.js";
import { stepResult } from "./helpers/protocol-runner.js";

/*
 * Attacks on the one-statement append on PostgreSQL (`appendKnown` / `insertKnown` in
 * src/store/append-run-events.ts, and the process's memory of a run's seq and log state,
 * known-runs.ts): the store driven as the server drives it, and as another replica or a member
 * with the database's view would. A runner speaking the protocol: runner-batch-attacks.test.ts.
 */

const adminUrl = inject("postgresAdminUrl");

describe.skipIf(!adminUrl)("the one-statement append on PostgreSQL, attacked", () => {
  let url: string;
  let store: Store;
  /** Another replica, or an attacker's view of the database: raw SQL. */
  let sql: pg.Client;
  /** Reads pg_stat_activity outside any transaction (a transaction sees one snapshot of it). */
  let watch: pg.Client;
  let runners = 0;

  beforeAll(async () => {
    url = await createDatabase(adminUrl, "runyard_test", inject("postgresMigrated"));
    store = await openPostgresStore(url, { poolSize: 6 });
    sql = new pg.Client({ connectionString: url });
    await sql.connect();
    watch = new pg.Client({ connectionString: url });
    await watch.connect();
  });

  afterAll(async () => {
    await sql?.end();
    await watch?.end();
    await store?.close();
  });

  /** A run as the server makes it (its state known from then on), and its job, claimed by a runner of its own. */
  async function runWithJob(maxBytes: number) {
    const runnerId = `runner-${++runners}`;
    const { record } = await store.runs.createWithEvent(
      { kind: "workflow", name: "attacked", replica_id: "replica-a" },
      { ts, type: "run.queued", kind: "workflow", name: "attacked" },
      { maxBytes, storedBytes: 0 },
    );
    const job = await store.jobs.create({ run_id: record.id, requirements: { labels: [] }, payload: {} });
    const claimed = await store.jobs.claim(
      { id: runnerId, group: "default", labels: [], tenant_id: null, shared: false, isolation: "none" },
      60_000,
    );
    expect(claimed?.id).toBe(job.id);
    expect(knownRun(record.id)).toMatchObject({ lastSeq: 1, logBytes: 0, maxBytes });
    return { runId: record.id, jobId: job.id, runnerId };
  }

  async function row(runId: string) {
    const { rows } = await sql.query<{
      last_seq: string;
      log_bytes: string;
      log_cut: string | null;
      replica_id: string | null;
    }>("select last_seq, log_bytes, log_cut, replica_id from runs where id = $1", [runId]);
    return rows[0]!;
  }

  /** Resolves once a statement of this database waits for a row lock (the one statement here). */
  async function waitingForLock(): Promise<void> {
    await expect
      .poll(
        async () =>
          (
            await watch.query(
              "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%known state%'",
            )
          ).rowCount,
        { interval: 10 },
      )
      .toBe(1);
  }

  it("numbers and caps from the row whatever this process remembers: a memory behind, ahead, or lying about the bytes, the cap or rolling", async () => {
    const cap = 100;
    const { runId, jobId, runnerId } = await runWithJob(cap);
    let batch = 0;
    const send = (data: string) =>
      store.events.appendForRun(runId, [output(data)], { job: { id: jobId, seq: ++batch, runnerId } });
    await send(`${"a".repeat(29)}\n`);
    const lies: Array<(now: { lastSeq: number; logBytes: number }) => Parameters<typeof rememberRun>[1]> = [
      (now) => ({ lastSeq: now.lastSeq - 1, logBytes: now.logBytes, maxBytes: cap, rolling: false }),
      (now) => ({ lastSeq: now.lastSeq + 5, logBytes: now.logBytes, maxBytes: cap, rolling: false }),
      (now) => ({ lastSeq: now.lastSeq, logBytes: 0, maxBytes: cap, rolling: false }),
      (now) => ({ lastSeq: now.lastSeq, logBytes: now.logBytes, maxBytes: 0, rolling: false }),
      (now) => ({ lastSeq: now.lastSeq, logBytes: now.logBytes, maxBytes: 1_000_000, rolling: false }),
      (now) => ({ lastSeq: now.lastSeq, logBytes: now.logBytes, maxBytes: cap, rolling: true }),
    ];
    const spied = knownStatementSpy();
    try {
      for (const lie of lies) {
        const now = await row(runId);
        rememberRun(runId, lie({ lastSeq: Number(now.last_seq), logBytes: Number(now.log_bytes) }));
        await send(`${"b".repeat(29)}\n`);
      }
      // Tried where the lie let it get as far as the database, and never taken.
      expect((await spied.took()).length).toBeGreaterThan(0);
      expect(await spied.took()).not.toContain(true);
    } finally {
      spied.spy.mockRestore();
    }
    await store.events.appendForRun(runId, [stepFinished()], { job: { id: jobId, seq: ++batch, runnerId } });
    const events = await store.events.list(runId, { limit: 100 });
    expectContiguous(events);
    // 7 batches of 30 bytes against a cap of 100: three stored, four cut and said at the step's end.
    expect(outputBytes(events)).toBe(90);
    const notice = events.find((event) => event.type === "notice");
    expect(notice).toMatchObject({ message: expect.stringContaining("120 more bytes") });
    expect(await row(runId)).toMatchObject({ last_seq: String(events.length), log_bytes: "90" });
  });

  it("falls back, numbering after it, when another replica's batch lands while the one statement waits for the run's row", async () => {
    const { runId, jobId, runnerId } = await runWithJob(1_000_000);
    await store.events.appendForRun(runId, [output("first\n")], { job: { id: jobId, seq: 1, runnerId } });
    const before = await row(runId);
    const theirSeq = Number(before.last_seq) + 1;
    const theirs = {
      ts,
      type: "notice",
      level: "info",
      message: "another replica",
      run_id: runId,
      seq: theirSeq,
    };
    await sql.query("begin");
    await sql.query(
      "insert into run_events (run_id, seq, type, ts, data) values ($1, $2, 'notice', $3, $4)",
      [runId, theirSeq, ts, JSON.stringify(theirs)],
    );
    await sql.query("update runs set last_seq = $2 where id = $1", [runId, theirSeq]);
    const mine = store.events.appendForRun(runId, [output("second\n")], {
      job: { id: jobId, seq: 2, runnerId },
      carrier: "replica-a",
    });
    await waitingForLock();
    await sql.query("commit");
    expect((await mine).events.map((event) => [event.seq, event.type])).toEqual([
      [theirSeq + 1, "step.output"],
    ]);
    const events = await store.events.list(runId, { limit: 100 });
    expectContiguous(events);
    expect(events.filter((event) => event.type === "step.output").map((event) => event.data)).toEqual([
      "first\n",
      "second\n",
    ]);
  });

  it("stores nothing for a replica that lost the run while its one statement waited for the row (fenced)", async () => {
    const { runId, jobId, runnerId } = await runWithJob(1_000_000);
    await store.events.appendForRun(runId, [output("first\n")], {
      job: { id: jobId, seq: 1, runnerId },
      carrier: "replica-a",
    });
    const seqBefore = (await row(runId)).last_seq;
    await sql.query("begin");
    await sql.query("update runs set replica_id = 'replica-b' where id = $1", [runId]);
    const late = store.events
      .appendForRun(runId, [output("from a fenced replica\n")], {
        job: { id: jobId, seq: 2, runnerId },
        carrier: "replica-a",
      })
      .then(
        () => "stored",
        (error: { code?: string }) => error.code,
      );
    await waitingForLock();
    await sql.query("commit");
    expect(await late).toBe("REPLICA_FENCED");
    expect((await row(runId)).last_seq).toBe(seqBefore);
    expect(await store.jobs.get(jobId)).toMatchObject({ last_event_seq: 1 });
  });

  it("writes nothing into a job another runner holds, a finished job, or another tenant's run, with the run's state known", async () => {
    const mine = await runWithJob(1_000_000);
    const theirs = await runWithJob(1_000_000);
    await store.events.appendForRun(theirs.runId, [output("theirs\n")], {
      job: { id: theirs.jobId, seq: 1, runnerId: theirs.runnerId },
    });
    const known = knownRun(theirs.runId);
    expect(known).toBeDefined();
    const spied = knownStatementSpy();
    try {
      // My runner's id on their job (the server's own check, `owns`, bypassed: the statement's alone).
      const injected = await store.events.appendForRun(theirs.runId, [output("injected\n")], {
        job: { id: theirs.jobId, seq: 2, runnerId: mine.runnerId },
      });
      expect(injected).toMatchObject({ duplicate: true, events: [] });
      expect((await store.jobs.get(theirs.jobId))?.last_event_seq).toBe(1);
      expect(await spied.took()).toEqual([false]);
      expect(knownRun(theirs.runId)).toEqual(known);
    } finally {
      spied.spy.mockRestore();
    }
    expect(
      (await store.events.list(theirs.runId, { limit: 100 })).flatMap((e) =>
        e.type === "step.output" ? [e.data] : [],
      ),
    ).toEqual(["theirs\n"]);
    // Their job done: a replay of a batch, or a new one, stores nothing.
    await store.jobs.complete(theirs.jobId, theirs.runnerId, stepResult as never, 1);
    const replay = await store.events.appendForRun(theirs.runId, [output("after the end\n")], {
      job: { id: theirs.jobId, seq: 9, runnerId: theirs.runnerId },
    });
    expect(replay.duplicate).toBe(true);
    expect(await store.events.list(theirs.runId, { limit: 100 })).toHaveLength(2);
  });

  it("stores event text that would break a hand-made statement verbatim, and batch numbers up to the largest safe integer", async () => {
    const { runId, jobId, runnerId } = await runWithJob(1_000_000);
    const nasty = [
      "'); delete from runs; --",
      '"quoted" \\ backslash $1 $$ :name ?',
      "nul \u0000 inside",
      "lone \ud800 surrogate",
      "emoji 🧨 and \u2028 separators \u2029",
      '{"type":"run.finished"}',
    ];
    const spied = knownStatementSpy();
    try {
      await store.events.appendForRun(
        runId,
        nasty.map((text) => output(text, text, text)),
        { job: { id: jobId, seq: Number.MAX_SAFE_INTEGER - 1, runnerId } },
      );
      expect(await spied.took()).toEqual([true]);
    } finally {
      spied.spy.mockRestore();
    }
    const events = await store.events.list(runId, { limit: 100 });
    expectContiguous(events);
    expect(events.flatMap((e) => (e.type === "step.output" ? [[e.data, e.step, e.host]] : []))).toEqual(
      nasty.map((text) => [text, text, text]),
    );
    expect((await store.jobs.get(jobId))?.last_event_seq).toBe(Number.MAX_SAFE_INTEGER - 1);
    expect(
      await store.events.appendForRun(runId, [output("lower\n")], { job: { id: jobId, seq: 5, runnerId } }),
    ).toMatchObject({ duplicate: true });
    expect(await store.events.list(runId, { limit: 100 })).toHaveLength(events.length);
  });

  it("stores 10,000 events in one statement and 10,001 the usual way, each once, numbered without a gap", async () => {
    const { runId, jobId, runnerId } = await runWithJob(0);
    const spied = knownStatementSpy();
    try {
      const batch = (n: number, text: string) => Array.from({ length: n }, () => output(text));
      await store.events.appendForRun(runId, batch(10_000, "a"), { job: { id: jobId, seq: 1, runnerId } });
      expect(await spied.took()).toEqual([true]);
      await store.events.appendForRun(runId, batch(10_001, "b"), { job: { id: jobId, seq: 2, runnerId } });
      await store.events.appendForRun(runId, batch(10_001, "c"), { job: { id: jobId, seq: 2, runnerId } });
      expect(await spied.took()).toEqual([true]);
    } finally {
      spied.spy.mockRestore();
    }
    // (run_id, seq) is the key: as many rows as the highest seq, from 1, is no gap and no seq twice.
    const { rows } = await sql.query<{ n: string; low: string; high: string }>(
      "select count(*) as n, min(seq) as low, max(seq) as high from run_events where run_id = $1",
      [runId],
    );
    expect(rows[0]).toEqual({ n: "20002", low: "1", high: "20002" });
    expect((await row(runId)).last_seq).toBe("20002");
    expect(Number((await row(runId)).log_bytes)).toBe(20_001);
  });

  it("keeps a run right when its memory is pushed out by 4,096 others (a member making many runs)", async () => {
    const { runId, jobId, runnerId } = await runWithJob(1_000_000);
    const others = Array.from({ length: 4096 }, (_, i) => `run_flood_${i}`);
    try {
      for (const other of others)
        rememberRun(other, { lastSeq: 1, logBytes: 0, maxBytes: 1, rolling: false });
      expect(knownRun(runId)).toBeUndefined();
      await store.events.appendForRun(runId, [output("one\n")], { job: { id: jobId, seq: 1, runnerId } });
      await store.events.appendForRun(runId, [output("two\n")], { job: { id: jobId, seq: 2, runnerId } });
    } finally {
      for (const other of others) rememberRun(other, undefined);
    }
    const events = await store.events.list(runId, { limit: 100 });
    expectContiguous(events);
    expect(events.flatMap((e) => (e.type === "step.output" ? [e.data] : []))).toEqual(["one\n", "two\n"]);
  });

  it("stores each of many concurrent batches of one job at most once, with no gap and no error", async () => {
    const { runId, jobId, runnerId } = await runWithJob(1_000_000);
    // Batches 1..40 sent out of order, the same order each run (17 steps around 41 visits each once).
    const order = Array.from({ length: 40 }, (_, i) => ((i + 1) * 17) % 41);
    const answers = await Promise.all(
      order.map((seq) =>
        store.events
          .appendForRun(runId, [output(`batch ${seq}\n`)], { job: { id: jobId, seq, runnerId } })
          .then(
            (stored) => ({ seq, answer: stored.duplicate ? "duplicate" : "stored" }),
            (error: Error) => ({ seq, answer: error.message }),
          ),
      ),
    );
    // Each batch is stored once or answered as a duplicate.
    const kinds = new Set(answers.map(({ answer }) => answer));
    for (const kind of kinds) expect(["stored", "duplicate"]).toContain(kind);
    const events = await store.events.list(runId, { limit: 100 });
    expectContiguous(events);
    const data = events.flatMap((e) => (e.type === "step.output" ? [e.data] : []));
    const storedSeqs = answers.filter(({ answer }) => answer === "stored").map(({ seq }) => seq);
    expect(data.sort()).toEqual(storedSeqs.map((seq) => `batch ${seq}\n`).sort());
    expect((await store.jobs.get(jobId))?.last_event_seq).toBe(Math.max(...storedSeqs));
  });

  /*
   * The one statement takes the job's row before the run's, as the usual way
   * (`lockRunForJobBatch`) does: a batch of the job stored the usual way elsewhere meanwhile
   * (another replica, after a runner's reconnect; a batch the one statement does not take: agent
   * usage, over 10,000 events) is waited for. In the other order the two waited for each other
   * and PostgreSQL ended one as a deadlock after `deadlock_timeout`, the batch not stored.
   */
  it("takes the job's and the run's rows in the usual way's order, so a batch stored the usual way meanwhile is waited for, not deadlocked", async () => {
    const { runId, jobId, runnerId } = await runWithJob(1_000_000);
    const usual = new pg.Client({ connectionString: url });
    await usual.connect();
    try {
      // The usual way's order (`lockRunForJobBatch`): the job's compare-and-set, then the run's row.
      await usual.query("begin");
      await usual.query(
        "update jobs set last_event_seq = 1, status = 'running' where id = $1 and last_event_seq < 1 and runner_id = $2",
        [jobId, runnerId],
      );
      const next = store.events.appendForRun(runId, [output("batch 2\n")], {
        job: { id: jobId, seq: 2, runnerId },
      });
      next.catch(() => undefined);
      await waitingForLock();
      const locked = await usual.query("update runs set last_seq = last_seq where id = $1", [runId]).then(
        () => "locked",
        (error: Error) => error.message,
      );
      await usual.query(locked === "locked" ? "commit" : "rollback");
      expect(locked).toBe("locked");
      expect((await next).events.map((event) => event.type)).toEqual(["step.output"]);
    } finally {
      await usual.end();
    }
  });
});
