import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore } from "../src/store/sqlite.js";
import { runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { until } from "./helpers/processes.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  sharedTestServer,
  startProxy,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  waitForRun,
} from "./helpers/server.js";

/*
 * A runner given several server URLs (`--server A,B`) fails over between them. Real `runyard
 * server` and `runyard runner` processes; the servers are independent (a SQLite home each), so
 * the runner token is made with the same secret in both databases before they start, as one
 * shared database of replicas would hold it.
 */

const sharedRunnerToken = "ryt_failover_shared_runner_token_0123456789";

/** For the tests about a runner's silence limit, counted in heartbeats: every 300 ms, not the 2 s of the rest. */
const quickBeats = { RUNYARD_HEARTBEAT_MS: "300" };

const quickFlow = (group: string): string => `version: v0.1
name: quick
inventory:
  hosts:
    a: {group: ${group}}
steps:
  - name: hello
    targets: [a]
    action: cmd.run
    args:
      cmd: echo hello from the runner
`;

/** A step that says `started`, then waits until `release` exists, then says `done`. */
const heldFlow = (dir: string, group: string): string => `version: v0.1
name: held
inventory:
  hosts:
    a: {group: ${group}}
steps:
  - name: hold
    targets: [a]
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo started; touch ${dir}/started
        for i in $(seq 1 400); do [ -e ${dir}/release ] && break; sleep 0.05; done
        echo done
`;

/** The runner token with `sharedRunnerToken` as its secret, in a home's database before its server starts. */
async function seedRunnerToken(home: string): Promise<void> {
  const store = await openSqliteStore(join(home, "runyard.db"));
  try {
    await store.tokens.create({ kind: "runner", name: "replica runner", secret: sharedRunnerToken });
  } finally {
    await store.close();
  }
}

/** A runner's `status` in the server's `GET /api/runners` (`connected` while it is online). */
async function runnerState(url: string, id: string): Promise<string | undefined> {
  const { body } = await api<Array<{ id: string; status: string }>>(url, "GET", "/api/runners");
  return body.find((runner) => runner.id === id)?.status;
}

describe("runner fail-over between servers", () => {
  const procs: Proc[] = [];
  const track = <T extends { proc: Proc } | Proc>(started: T): T => {
    procs.push("proc" in started ? started.proc : started);
    return started;
  };
  afterEach(async () => {
    for (const proc of procs.splice(0)) {
      proc.child.kill("SIGCONT");
      await proc.kill("SIGKILL");
    }
  });
  /**
   * One server for the tests that neither kill nor stop it, started at the first's start; each
   * test's runner (an id of its own) dies after it, its runs ended.
   */
  const sharedServer = sharedTestServer();

  it("moves past a server URL nobody listens on and runs a workflow to success", async () => {
    const server = await sharedServer();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const runner = track(
      await startRunner(`${dead}, ${server.url}`, await runnerToken(server.url), { id: "past-dead" }),
    );
    expect(runner.output()).toContain(
      `runner past-dead connected to ${server.url} (group default, capacity 2)`,
    );

    const run = await waitForRun(server.url, await submit(server.url, quickFlow("default")), isFinal);
    expect(run.status).toBe("success");
  });

  it("lets `runyard run` and `runyard runs list` use the next URL while the first refuses connections", async () => {
    const server = await sharedServer();
    track(await startRunner(server.url, await runnerToken(server.url), { id: "cli-next" }));
    const servers = `http://127.0.0.1:${await freePort()},${server.url}`;
    const env = { RUNYARD_TOKEN: adminToken };

    const submitted = await runCli(["run", writeWorkflow(quickFlow("default")), "--server", servers], {
      env,
    });
    expect(submitted.stderr).toContain(`submitted to ${server.url}`);
    expect(submitted.stdout).toContain("hello from the runner");
    expect(submitted.code).toBe(0);

    const listed = await runCli(["runs", "list", "--json", "--server", servers], { env });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('"status":"success"');
  });

  it("refuses a server list with an item that is not a URL, naming it", async () => {
    const result = await runCli(
      ["runner", "--server", "http://127.0.0.1:8088,server-b:8088", "--token", "t"],
      {
        env: { RUNYARD_HOME: tempDir() },
      },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error: "server-b:8088" is not a server URL');
    expect(result.stderr).toContain("hint: Did you mean http://server-b:8088?");
  });

  it("moves to the next server within seconds of a kill -9, and back to the first once it is restarted", async () => {
    const homeA = tempDir();
    const homeB = tempDir();
    await seedRunnerToken(homeA);
    await seedRunnerToken(homeB);
    const a = track(await startTestServer(homeA));
    const b = track(await startTestServer(homeB));
    const runner = track(
      await startRunner(`${a.url},${b.url}`, sharedRunnerToken, {
        id: "mover",
        group: "movers",
        env: { RUNYARD_LOG_LEVEL: "warn", RUNYARD_LOG_FORMAT: "text" },
      }),
    );
    expect(runner.output()).toContain(`runner mover connected to ${a.url} (group movers, capacity 2)`);
    expect(await runnerState(a.url, "mover")).toBe("connected");

    await a.proc.kill("SIGKILL");
    const killedAt = Date.now();
    await runner.waitFor(`runner mover connected to ${b.url}\n`, 10_000);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await runner.waitFor(`moved to server ${b.url}`); // the log line, on stderr
    expect(await runnerState(b.url, "mover")).toBe("connected");
    const onB = await waitForRun(b.url, await submit(b.url, quickFlow("movers")), isFinal);
    expect(onB.status).toBe("success");

    // A back on its port and home, B killed: the runner goes round to A.
    const port = Number(new URL(a.url).port);
    const again = track(await startTestServer(homeA, {}, port));
    await b.proc.kill("SIGKILL");
    await runner.waitFor(`runner mover connected to ${a.url}\n`, 10_000);
    await runner.waitFor(`moved to server ${a.url}`); // the log line, on stderr
    const onA = await waitForRun(again.url, await submit(again.url, quickFlow("movers")), isFinal);
    expect(onA.status).toBe("success");
    // Three server starts and two runs: past 60 s on a loaded 2-core host (the moves themselves
    // are held to 10 s above).
  }, 120_000);

  it("moves to the next server when its server falls silent for three heartbeats (or a third of its lease)", async () => {
    const homeA = tempDir();
    const homeB = tempDir();
    await seedRunnerToken(homeA);
    await seedRunnerToken(homeB);
    // A's lease of 3 s and heartbeats of 300 ms make its runner's silence limit 1 s (a third of
    // the lease, past three heartbeats); the file's usual 15 s lease would make it 5 s.
    const a = track(await startTestServer(homeA, { ...quickBeats, RUNYARD_LEASE_MS: "3000" }));
    const b = track(await startTestServer(homeB, quickBeats));
    const runner = track(
      await startRunner(`${a.url},${b.url}`, sharedRunnerToken, {
        id: "hushed",
        env: { RUNYARD_LOG_LEVEL: "warn", RUNYARD_LOG_FORMAT: "text" },
      }),
    );

    a.proc.child.kill("SIGSTOP");
    const stoppedAt = Date.now();
    await runner.waitFor(`runner hushed connected to ${b.url}\n`, 10_000);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    await runner.waitFor(/server silent for \d+\.\d s; reconnecting/);
    expect(await runnerState(b.url, "hushed")).toBe("connected");
  });

  // Guards: tests' 300 ms heartbeats once made a runner leave a server stalled for 0.9 s (a loaded
  // host), and a bot call in flight over its socket failed with a 502.
  it("stays with a server that stalls for less than its silence limit", async () => {
    const home = tempDir();
    await seedRunnerToken(home);
    const server = track(await startTestServer(home, quickBeats));
    const proxy = await startProxy(Number(new URL(server.url).port));
    try {
      const viaProxy = `http://127.0.0.1:${proxy.port}`;
      const runner = track(
        await startRunner(viaProxy, sharedRunnerToken, {
          id: "patient",
          env: { RUNYARD_LOG_LEVEL: "warn", RUNYARD_LOG_FORMAT: "text" },
        }),
      );
      // The server hears nothing of the runner, so answers nothing, for seven of its 300 ms
      // heartbeats: past the old limit of three, within today's (a third of the 15 s lease: 5 s).
      // A runner that leaves sooner closes its socket, which ends the hold early.
      await proxy.hold(7);
      proxy.release();
      const released = Date.now();
      // A heartbeat the runner sent after the stall: its silence check passed on that tick too.
      const lastHeartbeat = async (): Promise<number> => {
        const { body } = await api<Array<{ id: string; last_heartbeat_at: string | null }>>(
          server.url,
          "GET",
          "/api/runners",
        );
        return Date.parse(body.find((each) => each.id === "patient")?.last_heartbeat_at ?? "") || 0;
      };
      await expect.poll(lastHeartbeat, { timeout: 10_000 }).toBeGreaterThan(released + 300);
      expect(runner.output()).not.toMatch(/server silent|disconnected from server/);
      expect(runner.output().match(/runner patient connected to/g)).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });

  it("finishes the job in hand after it moves to another URL of the same server", async () => {
    const server = await sharedServer();
    const proxy = await startProxy(Number(new URL(server.url).port));
    const viaProxy = `http://127.0.0.1:${proxy.port}`;
    const runner = track(
      await startRunner(`${viaProxy},${server.url}`, await runnerToken(server.url), {
        id: "holder",
        group: "holders",
        env: { RUNYARD_LOG_LEVEL: "warn", RUNYARD_LOG_FORMAT: "text" },
      }),
    );
    expect(runner.output()).toContain(`runner holder connected to ${viaProxy}`);
    const work = stepDir();
    const runId = await submit(server.url, heldFlow(work, "holders"));
    await until("the step runs", () => existsSync(join(work, "started")));

    await proxy.close(); // cuts the link, and the proxy's port refuses from now on
    await runner.waitFor(`runner holder connected to ${server.url}\n`, 10_000);
    writeFileSync(join(work, "release"), "");

    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("success");
    expect(run.steps[0]?.attempts).toBe(1);
    const output = (await readEvents(server.url, runId))
      .flatMap((event) => (event.type === "step.output" ? [event.data] : []))
      .join("");
    expect(output).toBe("started\ndone\n");
  });
});
