import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import {
  adminToken,
  expectRunnerLoss,
  fastTimings,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  sharedTestServer,
  startCli,
  startProxy,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  waitForRun,
} from "./helpers/server.js";

// About a runner's loss: its leases are short (helpers/server.ts).
expectRunnerLoss();

/** A step that prints `count` numbered lines, a little apart. */
const counting = (count: number, extra = ""): string =>
  `version: v0.1\nname: durable\ninventory:\n  hosts:\n    a: {group: dur}\nsteps:\n  - name: count\n    targets: [a]\n    action: shell.run\n${extra}    args:\n      script: |\n        for i in $(seq 1 ${count}); do echo "line $i"; sleep 0.03; done\n`;

function outputLines(events: Array<{ type: string; data?: string }>): string[] {
  return events
    .flatMap((e) => (e.type === "step.output" ? [e.data ?? ""] : []))
    .join("")
    .split("\n")
    .filter(Boolean);
}

const expected = (count: number): string[] => Array.from({ length: count }, (_, i) => `line ${i + 1}`);

describe("durable runs", () => {
  const procs: Proc[] = [];
  const track = <T extends Proc>(proc: T): T => {
    procs.push(proc);
    return proc;
  };
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill("SIGKILL")));
  });
  /**
   * One server for the tests that neither kill nor restart it, started at the first's start:
   * each ends its runs and its runners are killed after it.
   */
  const sharedServer = sharedTestServer();

  it("marks a run interrupted (RUNNER_LOST) within 15 s when its runner is SIGKILLed", async () => {
    const server = await sharedServer();
    const runner = track(
      await startRunner(server.url, await runnerToken(server.url, "dur"), { id: "doomed", group: "dur" }),
    );
    const runId = await submit(server.url, counting(1000));
    await waitForRun(server.url, runId, (run) => run.status === "running");
    await runner.kill("SIGKILL");
    const killedAt = Date.now();
    const run = await waitForRun(server.url, runId, isFinal, 15_000);
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(run.status).toBe("interrupted");
    expect(run.error?.code).toBe("RUNNER_LOST");
  });

  it("queues the step again on another runner when the workflow allows retries", async () => {
    const server = await sharedServer();
    const token = await runnerToken(server.url, "dur");
    const first = track(await startRunner(server.url, token, { id: "first", group: "dur" }));
    const runId = await submit(
      server.url,
      counting(60, "    retry_count: 1\n    retry_delay_seconds: 0.1\n"),
    );
    await waitForRun(server.url, runId, (run) => run.status === "running");
    await first.kill("SIGKILL");
    track(await startRunner(server.url, token, { id: "second", group: "dur" }));
    const run = await waitForRun(server.url, runId, isFinal, 30_000);
    expect(run.status).toBe("success");
    expect(run.steps[0]?.attempts).toBe(2);
  });

  it("finishes a run across a server SIGKILL and restart; a follower sees every line exactly once", async () => {
    const home = tempDir();
    const server = await startTestServer(home);
    track(server.proc);
    const port = new URL(server.url).port;
    track(
      await startRunner(server.url, await runnerToken(server.url, "dur"), { id: "steady", group: "dur" }),
    );
    const runId = await submit(server.url, counting(80));
    const follower = track(
      startCli(["runs", "logs", runId, "-f", "--json", "--server", server.url], {
        RUNYARD_TOKEN: adminToken,
      }),
    );
    // Lines printed close together can arrive in one output event: look for the line, not the event.
    await follower.waitFor(/line 10\\n/);
    await server.proc.kill("SIGKILL");
    const restarted = await startTestServer(home, {}, Number(port));
    track(restarted.proc);
    expect(await follower.exited).toBe(0);
    const events = follower
      .output()
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { type: string; seq: number; data?: string; status?: string });
    expect(outputLines(events)).toEqual(expected(80));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)?.status).toBe("success");
  });

  it("loses and doubles nothing when a runner's connection drops mid-output", async () => {
    const server = await sharedServer();
    const proxy = await startProxy(Number(new URL(server.url).port));
    try {
      const token = await runnerToken(server.url, "dur");
      track(await startRunner(`http://127.0.0.1:${proxy.port}`, token, { id: "flaky-link", group: "dur" }));
      const runId = await submit(server.url, counting(60));
      await waitForRun(server.url, runId, (run) => run.status === "running");
      for (let cut = 0; cut < 3; cut++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        proxy.cut();
      }
      const run = await waitForRun(server.url, runId, isFinal, 30_000);
      expect(run.status).toBe("success");
      const events = await readEvents(server.url, runId);
      expect(outputLines(events)).toEqual(expected(60));
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    } finally {
      await proxy.close();
    }
  });

  it("drops a runner's output past RUNYARD_SPOOL_MAX_BYTES while its server is down, and the run says so", async () => {
    const home = tempDir();
    // Not about a loss: the usual lease. The runner hands the restarted server 32 MiB it held, and
    // on a loaded machine that kept it unheard past this file's 2 s (the run ended interrupted).
    const lease = { RUNYARD_LEASE_MS: fastTimings.RUNYARD_LEASE_MS };
    const server = await startTestServer(home, lease);
    track(server.proc);
    const port = new URL(server.url).port;
    const runnerHome = tempDir();
    track(
      await startRunner(server.url, await runnerToken(server.url, "dur"), {
        id: "spooler",
        group: "dur",
        env: { RUNYARD_HOME: runnerHome, RUNYARD_SPOOL_MAX_BYTES: "200000" },
      }),
    );
    const dir = stepDir();
    // 36 MB: past the 32 MiB a runner holds in memory for a job, then 200 KB on disk.
    const runId = await submit(
      server.url,
      `name: spooled\ninventory:\n  hosts:\n    a: {group: dur}\nsteps:\n  - name: print\n    targets: [a]\n    action: shell.run\n    args:\n      cwd: ${dir}\n      script: |\n        while [ ! -e go ]; do sleep 0.05; done\n        head -c 36000000 /dev/zero | tr '\\0' x | fold -w 99\n`,
    );
    await waitForRun(server.url, runId, (run) => run.status === "running");
    await server.proc.kill("SIGKILL");
    writeFileSync(join(dir, "go"), "");
    // The step ended: its notice of what was dropped waits in the runner's spool.
    const spool = join(runnerHome, "runners", "spooler", "spool");
    const deadline = Date.now() + 60_000;
    const noticeSpooled = () =>
      existsSync(spool) &&
      readdirSync(spool).some((name) => readFileSync(join(spool, name), "utf8").includes('"type":"notice"'));
    while (!noticeSpooled()) {
      if (Date.now() > deadline) throw new Error("no notice reached the spool");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const restarted = await startTestServer(home, lease, Number(port));
    track(restarted.proc);
    const run = await waitForRun(restarted.url, runId, isFinal, 60_000);
    expect(run.status).toBe("success");
    const notices = (await readEvents(restarted.url, runId)).flatMap((event) =>
      event.type === "notice" ? [event.message] : [],
    );
    expect(notices).toEqual([
      expect.stringMatching(
        /^\d+ characters of output were dropped: the server was unreachable and the runner keeps at most 200000 bytes of all its jobs' output on disk meanwhile \(RUNYARD_SPOOL_MAX_BYTES\)$/,
      ),
    ]);
  }, 150_000);
});
