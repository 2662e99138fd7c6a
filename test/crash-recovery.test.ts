import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { jobIdFor } from "../src/server/job-records.js";
import { tempDir } from "./helpers/cli.js";
import { alive, stepProcessGroup, until } from "./helpers/processes.js";
import { runEvent } from "./helpers/run-event.js";
import {
  adminToken,
  api,
  expectRunnerLoss,
  freePort,
  isFinal,
  lossTimings,
  type Proc,
  readEvents,
  runnerToken,
  sharedTestServer,
  startCli,
  startedOrKilled,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  waitForRun,
} from "./helpers/server.js";

// About a runner's loss: its leases are short (helpers/server.ts).
expectRunnerLoss();

/**
 * A step in `dir` (a `stepDir`) that says it started, then runs until `release` exists there (or
 * far too long).
 */
function holdingStep(dir: string, host: string, extra = ""): string {
  return `version: v0.1
name: held
inventory:
  hosts:
    a: ${host}
steps:
  - name: hold
    targets: [a]
    action: shell.run
${extra}    args:
      export_vars: true
      cwd: ${dir}
      script: |
        echo started > ${dir}/started
        echo started
        for i in $(seq 1 600); do [ -e ${dir}/release ] && break; sleep 0.05; done
        [ -e ${dir}/release ] || { sleep 60; touch ${dir}/late; }
        echo done
`;
}

/** A run that waits for an admin's approval, under a run timeout of an hour. */
const waitingForApproval = `name: gated
timeout: 1h
steps:
  - name: go-live
    action: approval
    args: {message: "Ship?", approvers: [role:admin], timeout_seconds: 3600}
`;

/** A run whose step fails, then waits ten minutes for its retry. */
const retryingLater = `name: retrying
steps:
  - name: flaky
    action: shell.run
    retry: {attempts: 3, backoff: fixed, delay: 10m}
    args: {script: "exit 3"}
`;

/** The held step's process group on this machine, as the runner journals and signals it. */
function stepPid(dir: string): number {
  const group = stepProcessGroup(dir);
  if (group === undefined) throw new Error(`no process of the step in ${dir} runs`);
  return group;
}

/** The step has written its whole line (the file exists a moment before it holds the line). */
const stepStarted = (dir: string): boolean =>
  existsSync(join(dir, "started")) && readFileSync(join(dir, "started"), "utf8").endsWith("\n");

/** Children of `pid`, by their /proc entries. */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((child) => {
      try {
        const stat = readFileSync(`/proc/${child}/stat`, "latin1");
        return Number(stat.slice(stat.lastIndexOf(") ") + 2).split(" ")[1]) === pid;
      } catch {
        return false;
      }
    });
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/** `runyard up` on a fixed port and home, with the test admin token. */
async function startUp(home: string, port: number, env: Record<string, string> = {}): Promise<Proc> {
  const proc = startCli(["up", "--port", String(port), "--home", home], {
    RUNYARD_ADMIN_TOKEN: adminToken,
    ...lossTimings,
    ...env,
  });
  await startedOrKilled(proc, "local runner connected");
  return proc;
}

describe("crash recovery", () => {
  const procs: Proc[] = [];
  const track = <T extends Proc>(proc: T): T => {
    procs.push(proc);
    return proc;
  };
  /**
   * One server for the tests that neither kill nor stop it, started at the first's start; each
   * test's runners (in groups and with ids of its own) are killed after it. Its lease is long:
   * nothing here may wait for one.
   */
  const sharedServer = sharedTestServer(() => startTestServer(tempDir(), { RUNYARD_LEASE_MS: "60000" }));
  const pids: number[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill("SIGKILL")));
    for (const pid of pids.splice(0)) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  });

  it("ends a run lost in a kill -9 of `runyard up` at the restart, not when a lease lapses, and cancel answers at once", async () => {
    const home = tempDir();
    const work = stepDir();
    const port = await freePort();
    // A long lease: nothing may wait for it.
    const env = { RUNYARD_LEASE_MS: "60000", RUNYARD_RECONNECT_GRACE_MS: "60000" };
    const first = track(await startUp(home, port, env));
    const url = `http://127.0.0.1:${port}`;
    const runId = await submit(url, holdingStep(work, "{}"));
    await until("the step runs", () => stepStarted(work));
    const pid = stepPid(work);
    pids.push(pid);
    // The runner journals a step's group right after spawning it; kill it once that is done.
    const journal = join(home, "runners", readdirSync(join(home, "runners"))[0] ?? "", "process-groups.log");
    await until("the runner journals the step", () => readFileSync(journal, "utf8").includes(`+ ${pid} `));
    await first.kill("SIGKILL");

    // It would hold forever if left behind.
    await until("the step dies with its runner", () => !alive(pid), 30_000);

    const second = track(await startUp(home, port, env));
    const restartedAt = Date.now();
    // Seconds, where the lease or the reconnect grace would take 60 (a busy machine took past 5).
    const run = await waitForRun(url, runId, isFinal, 20_000);
    expect(Date.now() - restartedAt).toBeLessThan(20_000);
    expect(run.status).toBe("interrupted");
    expect(run.error?.code).toBe("RUNNER_LOST");
    expect(run.error?.message).toMatch(/came back without this job|restarted/);

    const asked = Date.now();
    const cancel = await api(url, "POST", `/api/runs/${runId}/cancel`);
    // Not after the 15 s a cancel waits for a runner to stop a job it holds.
    expect(Date.now() - asked).toBeLessThan(5000);
    expect(cancel.status).toBe(409);
    expect(existsSync(join(work, "late"))).toBe(false);
    expect(second.output()).not.toContain("Error");
  });

  it("ends the jobs of a runner restarted under the same id at once, not when a lease lapses", async () => {
    const server = await sharedServer();
    const work = stepDir();
    const home = tempDir();
    const token = await runnerToken(server.url, "fixed");
    const runner = track(
      await startRunner(server.url, token, { id: "fixed", group: "fixed", env: { RUNYARD_HOME: home } }),
    );
    const runId = await submit(server.url, holdingStep(work, "{group: fixed}"));
    await until("the step runs", () => stepStarted(work));
    pids.push(stepPid(work));
    await runner.kill("SIGKILL");

    track(await startRunner(server.url, token, { id: "fixed", group: "fixed", env: { RUNYARD_HOME: home } }));
    // Well before the 60 s lease lapses, with room for a busy machine's runner start.
    const run = await waitForRun(server.url, runId, isFinal, 20_000);
    expect(run.status).toBe("interrupted");
    expect(run.error?.code).toBe("RUNNER_LOST");
  });

  it("kills at the next start what survived a runner whose reaper died with it", async () => {
    const server = await sharedServer();
    const work = stepDir();
    const home = tempDir();
    const token = await runnerToken(server.url, "journal");
    const runner = track(
      await startRunner(server.url, token, { id: "j1", group: "journal", env: { RUNYARD_HOME: home } }),
    );
    const runId = await submit(server.url, holdingStep(work, "{group: journal}"));
    await until("the step runs", () => stepStarted(work));
    const pid = stepPid(work);
    pids.push(pid);
    const runnerPid = runner.child.pid ?? 0;
    const reaper = childrenOf(runnerPid).find((child) => cmdline(child).includes("runyard-reaper"));
    expect(reaper).toBeDefined();
    const forkServer = childrenOf(runnerPid).find((child) => cmdline(child).includes("fork-server"));
    expect(forkServer).toBeDefined();
    // All die at once, as in `kill -9 -1` or an OOM kill of the lot: only the journal is left.
    // The runner is stopped first, so that it cannot act on the others' deaths.
    process.kill(runnerPid, "SIGSTOP");
    process.kill(reaper ?? 0, "SIGKILL");
    process.kill(forkServer ?? 0, "SIGKILL");
    await until(
      "the reaper and the fork-server are gone",
      () => !alive(reaper ?? 0) && !alive(forkServer ?? 0),
    );
    await runner.kill("SIGKILL");
    expect(alive(pid)).toBe(true);

    const again = track(
      startCli(["runner", "--server", server.url, "--token", token, "--id", "j1", "--group", "journal"], {
        ...lossTimings,
        RUNYARD_HOME: home,
        RUNYARD_LOG_LEVEL: "info",
      }),
    );
    await again.waitFor("runner j1 connected");
    expect(alive(pid)).toBe(false);
    const run = await waitForRun(server.url, runId, isFinal, 20_000);
    expect(run.status).toBe("interrupted");
    expect(run.error?.message).toMatch(/killed what was left of this step/);
    expect(again.output()).toMatch(/killed steps left running by this runner's previous life/);
  });

  it("runs its reaper without the operator's shell start-up files", async () => {
    // Found by the chaos soak on a machine whose ~/.bashrc runs `pyenv init`: bash reads
    // ~/.bashrc even when not interactive if its stdin is a socket (as if started by rshd), and
    // Node gives a child's stdin as a socket. The reaper ran the operator's start-up files, whose
    // background `pyenv rehash` held the reaper's stdin open, so both outlived the runner.
    const server = await sharedServer();
    const home = tempDir();
    const bashrc = join(home, "bashrc-ran");
    const bashEnv = join(home, "bash-env-ran");
    writeFileSync(join(home, ".bashrc"), `touch ${bashrc}\n`);
    writeFileSync(join(home, "env.sh"), `touch ${bashEnv}\n`);
    const token = await runnerToken(server.url);
    const runner = track(
      await startRunner(server.url, token, {
        id: "rc",
        env: { RUNYARD_HOME: home, HOME: home, SHLVL: "0", BASH_ENV: join(home, "env.sh") },
      }),
    );
    const runnerPid = runner.child.pid ?? 0;
    const reaper = childrenOf(runnerPid).find((child) => cmdline(child).includes("runyard-reaper"));
    expect(reaper).toBeDefined();
    await runner.kill("SIGKILL");
    await until("the reaper ends with its runner", () => !alive(reaper ?? 0));
    expect(existsSync(bashrc)).toBe(false);
    expect(existsSync(bashEnv)).toBe(false);
  });

  it("refuses reports and hellos from a runner token on another runner's job and id", async () => {
    const server = await sharedServer();
    const work = stepDir();
    const victimToken = await runnerToken(server.url, "victim");
    const rogueToken = await runnerToken(server.url, "victim");
    track(await startRunner(server.url, victimToken, { id: "victim", group: "victim" }));
    const runId = await submit(server.url, holdingStep(work, "{group: victim}"));
    await until("the step runs", () => stepStarted(work));
    const jobId = jobIdFor({ run_id: runId, step: "hold", host: "a", attempt: 1 } as never);

    const rogue = await connectRunner(server.url, rogueToken);
    rogue.send({ type: "hello", runner: { id: "rogue", hostname: "evil" }, jobs: [] });
    await rogue.next((m) => m.type === "welcome");
    rogue.send({ type: "accept", job_id: jobId });
    rogue.send({
      type: "events",
      job_id: jobId,
      batch: 1000,
      events: [
        {
          type: "step.output",
          step: "hold",
          host: "a",
          stream: "stdout",
          data: "BOPS_EXPORT:INJECTED=yes\ninjected output\n",
        },
      ],
    });
    rogue.send({
      type: "finished",
      job_id: jobId,
      batches: 0,
      result: {
        kind: "step",
        status: "success",
        exit_code: 0,
        exports: { INJECTED: "yes" },
        secret_exports: [],
        duration_ms: 1,
        memory_peak_bytes: 0,
        cpu_ms: 0,
        output_files: [],
        warnings: [],
      },
    });
    const refusals = await rogue.collect((m) => m.type === "error" && m.code === "FORBIDDEN", 3);
    expect(refusals.map((m) => m.message)).toEqual(
      expect.arrayContaining([expect.stringContaining(`job ${jobId} is not leased to runner rogue`)]),
    );
    rogue.close();

    const impostor = await connectRunner(server.url, rogueToken);
    impostor.send({ type: "hello", runner: { id: "victim", hostname: "evil" }, jobs: [] });
    const refused = await impostor.next((m) => m.type === "error");
    expect(refused).toMatchObject({ code: "RUNNER_ID_TAKEN" });
    await impostor.closed;
    const cli = startCli(
      ["runner", "--server", server.url, "--token", rogueToken, "--id", "victim"],
      lossTimings,
    );
    expect(await cli.exited).toBe(2);
    expect(cli.output()).toMatch(/runner id "victim" belongs to another runner token\nhint: .*--id/);

    const { body: runners } = await api<Array<{ id: string; state: string }>>(
      server.url,
      "GET",
      "/api/runners",
    );
    expect(runners.find((r) => r.id === "victim")?.state).not.toBe("offline");
    await import("node:fs").then((fs) => fs.writeFileSync(join(work, "release"), ""));
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("success");
    expect(run.vars.INJECTED).toBeUndefined();
    const output = (await readEvents(server.url, runId))
      .flatMap((e) => (e.type === "step.output" ? [e.data] : []))
      .join("");
    expect(output).toContain("started");
    expect(output).toContain("done");
    expect(output).not.toContain("injected");
  });

  it("lets running steps finish on SIGTERM, then exits 143", async () => {
    const server = await sharedServer();
    const work = stepDir();
    const runner = track(
      await startRunner(server.url, await runnerToken(server.url, "drain"), {
        id: "drainer",
        group: "drain",
      }),
    );
    const runId = await submit(server.url, holdingStep(work, "{group: drain}"));
    await until("the step runs", () => stepStarted(work));
    runner.child.kill("SIGTERM");
    await runner.waitFor("get up to 30 s to finish");
    // A run submitted while draining waits for another runner.
    const queued = await submit(server.url, holdingStep(stepDir(), "{group: drain}"));
    await import("node:fs").then((fs) => fs.writeFileSync(join(work, "release"), ""));
    expect(await runner.exited).toBe(143);
    expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
    expect((await api<{ status: string }>(server.url, "GET", `/api/runs/${queued}`)).body.status).toBe(
      "queued",
    );
  });

  it("cuts a step that outlasts the shutdown grace as lost, never as canceled, and leaves no process", async () => {
    const server = await sharedServer();
    const work = stepDir();
    const runner = track(
      await startRunner(server.url, await runnerToken(server.url, "cut"), {
        id: "cutter",
        group: "cut",
        env: { RUNYARD_SHUTDOWN_GRACE_MS: "300" },
      }),
    );
    const runId = await submit(server.url, holdingStep(work, "{group: cut}"));
    await until("the step runs", () => stepStarted(work));
    const pid = stepPid(work);
    pids.push(pid);
    runner.child.kill("SIGTERM");
    expect(await runner.exited).toBe(143);
    expect(alive(pid)).toBe(false);
    const run = await waitForRun(server.url, runId, isFinal, 20_000);
    expect(run.status).toBe("interrupted");
    expect(run.error?.code).toBe("RUNNER_LOST");
    expect(run.error?.message).toMatch(/shutdown grace/);
  });

  it("lets a server on SIGTERM wait for the steps its runners hold, then exit 143", async () => {
    const server = await startTestServer();
    track(server.proc);
    const work = stepDir();
    track(
      await startRunner(server.url, await runnerToken(server.url, "sdrain"), { id: "sd", group: "sdrain" }),
    );
    const runId = await submit(server.url, holdingStep(work, "{group: sdrain}"));
    await until("the step runs", () => stepStarted(work));
    server.proc.child.kill("SIGTERM");
    await server.proc.waitFor("running steps get up to 30 s to finish");
    const again = startCli(["server", "--port", String(await freePort()), "--home", server.home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    expect(await again.exited).toBe(2);
    expect(again.output()).toContain("is in use by another runyard process");
    await import("node:fs").then((fs) => fs.writeFileSync(join(work, "release"), ""));
    expect(await server.proc.exited).toBe(143);
    const restarted = track((await startTestServer(server.home)).proc);
    expect(restarted.output()).toContain("listening");
    const { body } = await api<{ status: string }>(
      (await restarted.waitFor(/http:\/\/[^\s]+/)).trim(),
      "GET",
      `/api/runs/${runId}`,
    );
    expect(body.status).toBe("success");
  });

  it("refuses a second `runyard up` on the same home, and exits 143 on SIGTERM", async () => {
    const home = tempDir();
    const first = track(await startUp(home, await freePort()));
    const second = startCli(["up", "--port", String(await freePort()), "--home", home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    expect(await second.exited).toBe(2);
    expect(second.output()).toMatch(/is in use by another runyard process \(pid \d+\)/);
    expect(second.output()).toMatch(/hint: .*--home/);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(143);
    // The lock went with it.
    const third = track(await startUp(home, await freePort()));
    expect(third.output()).toContain("local runner connected");
  });

  it("exits on SIGTERM and SIGINT while runs wait for an approval and a retry, which wait on after the next start", async () => {
    // Before: the approval's wait read the closed store again every 2 s, and the run's `timeout:`
    // and the wait before the retry held their timers, so `up` said "stopping" and never exited.
    const home = tempDir();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { RUNYARD_LEASE_MS: "60000", RUNYARD_RECONNECT_GRACE_MS: "60000" };
    const first = track(await startUp(home, port, env));
    const gated = await submit(url, waitingForApproval);
    const retrying = await submit(url, retryingLater);
    await runEvent(url, gated, (event) => event.type === "step.waiting");
    await runEvent(url, retrying, (event) => event.type === "step.retrying");
    expect(await first.kill("SIGTERM")).toBe(143);

    const second = track(await startUp(home, port, env));
    const waiting = await waitForRun(url, gated, (run) => run.steps[0]?.status === "waiting");
    expect(waiting.status).toBe("running");
    expect((await api<{ status: string }>(url, "GET", `/api/runs/${retrying}`)).body.status).toBe("running");
    expect(await second.kill("SIGINT")).toBe(130);
  });
});

interface Message {
  type: string;
  code?: string;
  message?: string;
}

/** A raw runner connection, as a rogue holder of a runner token would open one. */
async function connectRunner(url: string, token: string) {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/api/runners/connect`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const received: Message[] = [];
  const waiters = new Set<() => void>();
  socket.on("message", (data) => {
    received.push(JSON.parse(String(data)) as Message);
    for (const waiter of waiters) waiter();
  });
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const collect = (match: (m: Message) => boolean, count: number): Promise<Message[]> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`got ${JSON.stringify(received)}`)), 10_000);
      const check = (): void => {
        const found = received.filter(match);
        if (found.length >= count) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        }
      };
      waiters.add(check);
      check();
    });
  return {
    send: (message: unknown) => socket.send(JSON.stringify(message)),
    next: async (match: (m: Message) => boolean) => (await collect(match, 1))[0] as Message,
    collect,
    close: () => socket.close(),
    closed,
  };
}
