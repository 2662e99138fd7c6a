import { readFileSync } from "node:fs";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { until } from "./helpers/processes.js";
import {
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  waitForRun,
} from "./helpers/server.js";

/*
 * Found by the chaos soak (test/soak/): a job the server claimed for a runner whose `assign`
 * never reached it (the replica died, or the link dropped, right after the claim) was ended
 * RUNNER_LOST when the runner came back without it, so a run whose work never started ended
 * `interrupted`, though no runner was lost. Here the link is a proxy that swallows the assign.
 */

/**
 * A TCP proxy that can swallow everything both ways (`freeze`), or only what the client sends
 * (`freezeUp`), and then drop its connections (`cut`).
 */
async function swallowingProxy(
  targetPort: number,
): Promise<{ url: string; freeze: () => void; freezeUp: () => void; cut: () => void }> {
  const sockets = new Set<Socket>();
  let frozen = false;
  let upFrozen = false;
  const server = createServer((client) => {
    const upstream = netConnect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => socket.destroy());
    }
    client.on("data", (data) => frozen || upFrozen || upstream.write(data));
    upstream.on("data", (data) => frozen || client.write(data));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true;
    },
    freezeUp: () => {
      upFrozen = true;
    },
    cut: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

const quick = `version: v0.1
name: quick
inventory:
  hosts:
    worker: {}
steps:
  - name: hello
    targets: [worker]
    action: cmd.run
    args:
      cmd: echo hello
`;

describe("a job whose assign never reached its runner", () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((proc) => proc.kill("SIGKILL")));
  });

  it("runs when the runner comes back without it, instead of ending the run RUNNER_LOST", async () => {
    // Heartbeats of 2 s: the runner notices the silent link only after 6 s, so the claim below
    // happens while the server still counts the runner as connected through the proxy.
    const server = await startTestServer(undefined, {
      RUNYARD_HEARTBEAT_MS: "2000",
      RUNYARD_LEASE_MS: "10000",
    });
    procs.push(server.proc);
    const proxy = await swallowingProxy(Number(new URL(server.url).port));
    const runner = await startRunner(`${proxy.url},${server.url}`, await runnerToken(server.url), {
      id: "far",
    });
    procs.push(runner);
    proxy.freeze();
    const runId = await submit(server.url, quick);
    const db = new Database(join(server.home, "runyard.db"), { readonly: true });
    try {
      await until("the server assigned the job to the runner", () => {
        const job = db.prepare("select status from jobs where run_id = ?").get(runId) as
          | { status: string }
          | undefined;
        return job?.status === "assigned";
      });
    } finally {
      db.close();
    }
    // The link drops: the runner moves to the server's own URL, holding no job.
    proxy.cut();
    await runner.waitFor(`runner far connected to ${server.url}`, 10_000);
    const run = await waitForRun(server.url, runId, isFinal, 20_000);
    expect(run.error).toBeNull();
    expect(run.status).toBe("success");
  });

  it("ends RUNNER_LOST without a start when its runner vanishes before the server heard it take the job up, and never runs it twice", async () => {
    // The server cannot tell an assign its runner never read from an accept that died with the
    // socket while the step ran: offering the job again could run the step twice. So the job
    // is lost (retried where retry_count allows), and the run does not claim the step began.
    const server = await startTestServer(undefined, {
      RUNYARD_HEARTBEAT_MS: "1000",
      RUNYARD_LEASE_MS: "3000",
    });
    procs.push(server.proc);
    const proxy = await swallowingProxy(Number(new URL(server.url).port));
    const token = await runnerToken(server.url);
    const far = await startRunner(proxy.url, token, { id: "far" });
    procs.push(far);
    proxy.freeze();
    const runId = await submit(server.url, quick);
    const db = new Database(join(server.home, "runyard.db"), { readonly: true });
    const job = (): { status: string; runner_id: string | null } | undefined =>
      db.prepare("select status, runner_id from jobs where run_id = ?").get(runId) as
        | { status: string; runner_id: string | null }
        | undefined;
    try {
      await until("the server assigned the job to the far runner", () => job()?.status === "assigned");
      // The far runner dies holding the assign it never read; its lease runs out.
      await far.kill("SIGKILL");
      const near = await startRunner(server.url, token, { id: "near" });
      procs.push(near);
      const run = await waitForRun(server.url, runId, isFinal, 20_000);
      expect(run.status).toBe("interrupted");
      expect(run.error?.code).toBe("RUNNER_LOST");
      expect(run.error?.message).toMatch(/before the server heard it take the job up/);
      expect(job()).toEqual({ status: "lost", runner_id: "far" });
      const events = await readEvents(server.url, runId);
      expect(events.filter((event) => event.type === "step.started")).toEqual([]);
    } finally {
      db.close();
      proxy.cut();
    }
  });

  it("takes a job as accepted when its runner comes back holding it, its accept lost with the old link, and stores its start before its output", async () => {
    const server = await startTestServer(undefined, {
      RUNYARD_HEARTBEAT_MS: "2000",
      RUNYARD_LEASE_MS: "60000",
    });
    procs.push(server.proc);
    const proxy = await swallowingProxy(Number(new URL(server.url).port));
    const home = tempDir();
    const runner = await startRunner(`${proxy.url},${server.url}`, await runnerToken(server.url), {
      id: "far",
      env: { RUNYARD_HOME: home },
    });
    procs.push(runner);
    proxy.freezeUp();
    const runId = await submit(server.url, quick.replace("echo hello", "echo hello; sleep 1; echo bye"));
    const journal = join(home, "runners", "far", "jobs.log");
    const db = new Database(join(server.home, "runyard.db"), { readonly: true });
    try {
      const row = (): { id: string; status: string } | undefined =>
        db.prepare("select id, status from jobs where run_id = ?").get(runId) as
          | { id: string; status: string }
          | undefined;
      await until("the runner holds the job", () => {
        const id = row()?.id;
        return id !== undefined && journals(journal, id);
      });
      expect(row()?.status).toBe("assigned");
      // The link drops with the accept and the first output in it; the runner moves on, holding the job.
      proxy.cut();
      const run = await waitForRun(server.url, runId, isFinal, 20_000);
      expect(run.error).toBeNull();
      expect(run.status).toBe("success");
      const events = await readEvents(server.url, runId);
      const started = events.findIndex((event) => event.type === "step.started");
      const output = events.findIndex((event) => event.type === "step.output");
      expect(started).toBeGreaterThanOrEqual(0);
      expect(output).toBeGreaterThan(started);
      expect(events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("")).toBe(
        "hello\nbye\n",
      );
    } finally {
      db.close();
    }
  });

  it("stores the step's start before its RUNNER_LOST when the runner died holding the job before its accept got through", async () => {
    // Found by the chaos soak: a runner journals a job as held, sends its accept and starts the
    // step; killed before the accept reached the server, its next life reports the job reaped,
    // and the server lost it without the engine ever hearing it began: the run showed a step
    // lost by a runner that had never started it. Here the link swallows what the runner sends.
    const server = await startTestServer(undefined, {
      RUNYARD_HEARTBEAT_MS: "2000",
      RUNYARD_LEASE_MS: "60000",
    });
    procs.push(server.proc);
    const proxy = await swallowingProxy(Number(new URL(server.url).port));
    const token = await runnerToken(server.url);
    const home = tempDir();
    const first = await startRunner(proxy.url, token, { id: "far", env: { RUNYARD_HOME: home } });
    procs.push(first);
    proxy.freezeUp();
    const runId = await submit(server.url, quick.replace("echo hello", "sleep 30"));
    const journal = join(home, "runners", "far", "jobs.log");
    const db = new Database(join(server.home, "runyard.db"), { readonly: true });
    try {
      const jobId = (): string | undefined =>
        (db.prepare("select id from jobs where run_id = ?").get(runId) as { id: string } | undefined)?.id;
      await until("the runner journaled the job as held", () => {
        const id = jobId();
        return id !== undefined && journals(journal, id);
      });
      // Its accept never got through: the server still holds the job as only handed out.
      expect(db.prepare("select status from jobs where id = ?").get(jobId())).toEqual({ status: "assigned" });
      await first.kill("SIGKILL");
      proxy.cut();
      const second = await startRunner(server.url, token, { id: "far", env: { RUNYARD_HOME: home } });
      procs.push(second);
      const run = await waitForRun(server.url, runId, isFinal, 20_000);
      expect(run.status).toBe("interrupted");
      expect(run.error?.code).toBe("RUNNER_LOST");
      const events = await readEvents(server.url, runId);
      const started = events.findIndex((event) => event.type === "step.started" && event.step === "hello");
      const finished = events.findIndex((event) => event.type === "step.finished" && event.step === "hello");
      expect(started).toBeGreaterThanOrEqual(0);
      expect(finished).toBeGreaterThan(started);
    } finally {
      db.close();
    }
  });
});

/** Whether the runner's journal (`<state>/jobs.log`) lists `jobId` as held. */
function journals(journal: string, jobId: string): boolean {
  let text = "";
  try {
    text = readFileSync(journal, "utf8");
  } catch {
    return false;
  }
  const id = encodeURIComponent(jobId);
  return text.includes(`+ ${id}\n`) && !text.includes(`- ${id}\n`);
}
