import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { runnerSocketPath } from "../src/core/protocol.js";
import type { RunningServer } from "../src/server/server.js";
import { knownRun } from "../src/store/known-runs.js";
import { expectContiguous, knownStatementSpy, outputBytes } from "./helpers/appended-events.js";
import { startInProcessServer } from "./helpers/in-process.js";
import { createDatabase } from "./helpers/postgres-cluster.js";
import { type AssignMessage, oneStep, ProtocolRunner, stepResult, token } from "./helpers/protocol-runner.js";
import { adminToken, api, type TestServer } from "./helpers/server.js";

/*
 * A tenant's own runner, speaking the protocol itself, against a server on PostgreSQL whose
 * batches go in one statement (`appendKnown` in src/store/append-run-events.ts): other runners'
 * and tenants' jobs, resent and replayed batches, a second connection, the log cap. The store's
 * side: append-one-statement-attacks.test.ts.
 */

const adminUrl = inject("postgresAdminUrl");

describe.skipIf(!adminUrl)(
  "a tenant's own runner against a server on PostgreSQL (one statement a batch)",
  () => {
    const cap = 64 * 1024;
    let server: RunningServer;
    let target: TestServer;
    let serverDb: string;
    const open: ProtocolRunner[] = [];

    beforeAll(async () => {
      serverDb = await createDatabase(adminUrl, "runyard_test", inject("postgresMigrated"));
      server = await startInProcessServer({
        databaseUrl: serverDb,
        secretKey: "one-statement-attacks-secret-key-0123456789",
        adminToken,
        maxRunLogBytes: cap,
      });
      target = { url: server.url } as TestServer;
    });

    afterEach(() => {
      for (const runner of open.splice(0)) runner.close();
    });

    afterAll(async () => {
      await server?.close();
    });

    async function connect(runnerToken: string, id: string): Promise<ProtocolRunner> {
      const runner = await ProtocolRunner.connect(target, runnerToken, id);
      open.push(runner);
      return runner;
    }

    /** A run submitted (by `as`, or the admin) and the job it hands `runner`, accepted. */
    async function assigned(runner: ProtocolRunner, as?: string) {
      const from = runner.received.length;
      const { status, body } = await api<{ run_id: string }>(
        server.url,
        "POST",
        "/api/runs",
        { kind: "workflow", workflow: oneStep },
        as,
      );
      expect(status, JSON.stringify(body)).toBe(201);
      const assign = await runner.next<AssignMessage>((m) => m.type === "assign", from);
      runner.send({ type: "accept", job_id: assign.job.job_id });
      const { step, host } = assign.job.payload;
      return {
        runId: body.run_id,
        jobId: assign.job.job_id,
        out: (data: string) => ({ type: "step.output", stream: "stdout", data, step, host }),
        notice: (message: string) => ({ type: "notice", level: "warn", message, step, host }),
      };
    }

    /** The server's answer to one batch: its ack, an error, or the socket's close. */
    async function acked(runner: ProtocolRunner, jobId: string, batch: number, events: unknown[]) {
      const from = runner.received.length;
      const closed = new Promise<{ closed: number }>((resolve) =>
        runner.socket.once("close", (code) => resolve({ closed: code })),
      );
      runner.send({ type: "events", job_id: jobId, batch, events });
      return Promise.race([
        runner.next((m) => (m.type === "ack" && m.batch === batch) || m.type === "error", from),
        closed,
      ]);
    }

    /** The same runner again on a second socket, saying it holds `jobs` (the first socket is replaced). */
    async function again(runnerToken: string, id: string, jobs: Array<{ id: string; batch: number }>) {
      const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}${runnerSocketPath}`, {
        headers: { authorization: `Bearer ${runnerToken}` },
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("open", () => resolve());
        socket.once("error", reject);
      });
      const Made = ProtocolRunner as unknown as new (socket: WebSocket) => ProtocolRunner;
      const runner = new Made(socket);
      open.push(runner);
      runner.send({ type: "hello", jobs, runner: { id, hostname: "attacker", capacity: 1, labels: [] } });
      await runner.next((m) => m.type === "welcome");
      return runner;
    }

    const stored = (runId: string) => server.store.events.list(runId, { limit: 100_000 });

    it("refuses a teammate's runner and another tenant's runner on a job it does not hold, storing nothing, the run's state known", async () => {
      const memberA = await token(target, { kind: "user", name: "member a", tenant_id: "tenant-a" });
      const memberB = await token(target, { kind: "user", name: "member b", tenant_id: "tenant-b" });
      const holder = await connect(
        await token(target, { kind: "runner", name: "a1", tenant_id: "tenant-a" }),
        "a1",
      );
      const teammate = await connect(
        await token(target, { kind: "runner", name: "a2", tenant_id: "tenant-a" }),
        "a2-busy",
      );
      const other = await connect(
        await token(target, { kind: "runner", name: "b1", tenant_id: "tenant-b" }),
        "b1",
      );
      const jobA = await assigned(holder, memberA);
      const jobB = await assigned(other, memberB);
      expect(await acked(holder, jobA.jobId, 1, [jobA.out("a's own\n")])).toMatchObject({ type: "ack" });
      expect(await acked(other, jobB.jobId, 1, [jobB.out("b's own\n")])).toMatchObject({ type: "ack" });
      const knownA = knownRun(jobA.runId);
      const knownB = knownRun(jobB.runId);
      expect(knownB).toBeDefined();
      const attacks: Array<[ProtocolRunner, string, number]> = [
        [teammate, jobA.jobId, 2],
        [holder, jobB.jobId, 2],
        [teammate, jobB.jobId, 2],
        [holder, jobB.jobId, 1],
      ];
      for (const [runner, jobId, batch] of attacks) {
        const answer = await acked(runner, jobId, batch, [jobA.out("injected\n"), jobB.out("injected\n")]);
        expect(answer).toMatchObject({ type: "error", code: "FORBIDDEN" });
      }
      for (const { runId } of [jobA, jobB]) {
        const events = await stored(runId);
        expectContiguous(events);
        expect(JSON.stringify(events)).not.toContain("injected");
      }
      expect(knownRun(jobA.runId)).toEqual(knownA);
      expect(knownRun(jobB.runId)).toEqual(knownB);
      // And the holders' next batches still land where they should.
      expect(await acked(other, jobB.jobId, 2, [jobB.out("b again\n")])).toMatchObject({ type: "ack" });
      const b = await stored(jobB.runId);
      expectContiguous(b);
      expect(b.flatMap((e) => (e.type === "step.output" ? [e.data] : []))).toEqual([
        "b's own\n",
        "b again\n",
      ]);
    });

    it("stores nothing from a batch replayed after its job finished, inside or outside a `finished`", async () => {
      const runner = await connect(await token(target, { kind: "runner", name: "replayer" }), "replayer");
      const job = await assigned(runner);
      expect(await acked(runner, job.jobId, 1, [job.out("once\n")])).toMatchObject({ type: "ack" });
      runner.send({ type: "finished", job_id: job.jobId, batches: 1, result: stepResult });
      await runner.next((m) => m.type === "done");
      await expect.poll(async () => (await server.store.runs.get(job.runId))?.status).toBe("success");
      const before = await stored(job.runId);
      const from = runner.received.length;
      runner.send({ type: "events", job_id: job.jobId, batch: 1, events: [job.out("replayed\n")] });
      runner.send({ type: "events", job_id: job.jobId, batch: 2, events: [job.out("after the end\n")] });
      runner.send({
        type: "finished",
        job_id: job.jobId,
        batches: 3,
        events: [job.out("inside finished\n")],
        result: stepResult,
      });
      await runner.next((m) => m.type === "done", from);
      expect(await stored(job.runId)).toEqual(before);
    });

    it("stores a batch number once whatever it resends, over a second connection too, and keeps to the log cap across both", async () => {
      const runnerToken = await token(target, { kind: "runner", name: "two links" });
      const first = await connect(runnerToken, "two-links");
      const job = await assigned(first);
      const chunk = "x".repeat(20 * 1024);
      expect(await acked(first, job.jobId, 1, [job.out(chunk)])).toMatchObject({ type: "ack" });
      expect(await acked(first, job.jobId, 1, [job.out("resent with other text\n")])).toMatchObject({
        type: "ack",
      });
      expect(await acked(first, job.jobId, 2, [job.notice(chunk)])).toMatchObject({ type: "ack" });
      // The same runner again: the first link is replaced, the job kept.
      const second = await again(runnerToken, "two-links", [{ id: job.jobId, batch: 2 }]);
      // Both links at once: the old one's batches refused or dropped, the new one's stored once each.
      for (let batch = 3; batch <= 8; batch++) {
        first.send({ type: "events", job_id: job.jobId, batch, events: [job.out(`old link ${batch}\n`)] });
        second.send({
          type: "events",
          job_id: job.jobId,
          batch,
          events: [job.out(chunk), job.notice(chunk)],
        });
      }
      await second.next((m) => m.type === "ack" && m.batch === 8);
      expect(await acked(second, job.jobId, 5, [job.out("late resend\n")])).toMatchObject({ type: "ack" });
      second.send({ type: "finished", job_id: job.jobId, batches: 8, result: stepResult });
      await second.next((m) => m.type === "done");
      await expect.poll(async () => (await server.store.runs.get(job.runId))?.status).toBe("success");
      const events = await stored(job.runId);
      expectContiguous(events);
      expect(JSON.stringify(events)).not.toContain("resent with other text");
      expect(JSON.stringify(events)).not.toContain("late resend");
      expect(outputBytes(events)).toBeLessThanOrEqual(cap);
      expect(events.some((e) => e.type === "notice" && e.message.includes("reached its cap"))).toBe(true);
      const client = new pg.Client({ connectionString: serverDb });
      await client.connect();
      try {
        const { rows } = await client.query<{ log_bytes: string }>(
          "select log_bytes from runs where id = $1",
          [job.runId],
        );
        expect(Number(rows[0]?.log_bytes)).toBe(outputBytes(events));
      } finally {
        await client.end();
      }
    });

    it("stores a batch as large as a runner's message may hold (8,000 events) in one statement, and its resend nowhere", async () => {
      const runner = await connect(await token(target, { kind: "runner", name: "floods" }), "floods");
      const job = await assigned(runner);
      expect(await acked(runner, job.jobId, 1, [job.out("start\n")])).toMatchObject({ type: "ack" });
      expect(knownRun(job.runId)).toBeDefined();
      // Six JSON values an event (a step's notices): a message holds at most 50,000.
      const flood = Array.from({ length: 8_000 }, () => job.notice("n"));
      const spied = knownStatementSpy();
      try {
        expect(await acked(runner, job.jobId, 2, flood)).toMatchObject({ type: "ack" });
        expect(await acked(runner, job.jobId, 2, flood)).toMatchObject({ type: "ack" });
        expect(await spied.took()).toContain(true);
      } finally {
        spied.spy.mockRestore();
      }
      const events = await stored(job.runId);
      expectContiguous(events);
      expect(events.filter((e) => e.type === "notice" && e.message === "n")).toHaveLength(8_000);
    });
  },
);
