import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { testRunnerInfo } from "../../test/helpers/runner-info.js";
import { silentLogger } from "../core/logger.js";
import { createExecutor } from "../exec/create-executor.js";
import { LocalStepRunner } from "../exec/local-runner.js";
import { type RunningServer, startServer } from "../server/server.js";
import { StepJobHandler } from "./handlers/step.js";
import { RunnerDaemon, serverSilenceMs } from "./runner.js";
import type { RunnerDaemonOptions } from "./runner-options.js";

/*
 * Fail-over between servers, with real in-process servers and the real daemon. A runner token
 * with the same secret is made on each server, as replicas sharing one database would have it.
 */

const runnerSecret = "ryt_failover_runner_token_0123456789";
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const openServers = new Set<RunningServer>();

async function server(): Promise<RunningServer> {
  const running = await startServer({
    host: "127.0.0.1",
    port: 0,
    home: undefined,
    timings: { heartbeatMs: 200, leaseMs: 5000 },
    reconnectGraceMs: 1000,
    logger: silentLogger,
    version: "test",
    warn: () => undefined,
  });
  await running.store.tokens.create({ kind: "runner", name: "failover", secret: runnerSecret });
  openServers.add(running);
  cleanups.push(() => closeServer(running));
  return running;
}

async function closeServer(running: RunningServer): Promise<void> {
  if (openServers.delete(running)) await running.close();
}

/** A port where nothing listens: connections to it are refused. */
async function deadUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
}

/** A TCP endpoint that accepts and at once drops every connection, noting when each came. */
async function droppingEndpoint(): Promise<{ url: string; arrivals: number[] }> {
  const arrivals: number[] = [];
  const endpoint: Server = createServer((socket) => {
    arrivals.push(Date.now());
    socket.destroy();
  });
  await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => endpoint.close(resolve)));
  const address = endpoint.address();
  return { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, arrivals };
}

function daemon(
  serverUrls: string[],
  options: {
    minBackoffMs?: number;
    maxBackoffMs?: number;
    spool?: { dir: string } & SpoolOptions;
    bots?: RunnerDaemonOptions["bots"];
    onWelcome?: RunnerDaemonOptions["onWelcome"];
  } = {},
) {
  const executor = createExecutor({ baseEnv: { PATH: process.env.PATH ?? "" }, killGraceMs: 300 });
  cleanups.push(async () => executor.close());
  const welcomes: string[] = [];
  const runner = new RunnerDaemon({
    serverUrls,
    token: runnerSecret,
    info: testRunnerInfo({ id: "failover-runner" }),
    handlers: { step: new StepJobHandler(new LocalStepRunner(executor, { killGraceMs: 300 })) },
    logger: silentLogger,
    ...options,
    onConnected: (url) => welcomes.push(url),
  });
  cleanups.push(() => runner.stop(0));
  return { runner, welcomes };
}

describe("serverSilenceMs", () => {
  it("is three heartbeats, or a third of the lease where that is longer", () => {
    expect(serverSilenceMs(2000, 10_000)).toBe(6000);
    expect(serverSilenceMs(300, 2000)).toBe(900);
    expect(serverSilenceMs(300, 15_000)).toBe(5000);
  });
});

describe("RunnerDaemon with several servers", () => {
  it("goes on to the next server at once when the first refuses the connection", async () => {
    const live = await server();
    // A backoff of ten minutes: waited out, the start would outlast the test's timeout.
    const { runner, welcomes } = daemon([await deadUrl(), live.url], {
      minBackoffMs: 600_000,
      maxBackoffMs: 600_000,
    });
    await runner.start();
    expect(runner.serverUrl).toBe(live.url);
    expect(welcomes).toEqual([live.url]);
  });

  it("waits out the backoff only after every server of a round failed", async () => {
    const first = await droppingEndpoint();
    const second = await droppingEndpoint();
    // A backoff long enough that "at once" leaves a busy machine seconds, where 1 s left 500 ms.
    const { runner } = daemon([first.url, second.url], { minBackoffMs: 5000 });
    void runner.start();
    await until(() => first.arrivals.length >= 2, 20_000);
    const [firstTry = 0, secondRound = 0] = first.arrivals;
    const secondTry = second.arrivals[0] ?? 0;
    // first -> second at once; then the backoff (5000 ms, +-20 %: 4000 at the least) before the
    // next round. One line between the two: a busy machine's "at once" may take seconds.
    const backoffLeast = 3750;
    expect(secondTry - firstTry).toBeLessThan(backoffLeast);
    expect(secondRound - secondTry).toBeGreaterThanOrEqual(backoffLeast);
    // Within the first round the second server was tried once (the next round may have begun).
    expect(second.arrivals.filter((at) => at < secondRound)).toHaveLength(1);
  });

  it("moves to the next server when its server goes away", async () => {
    const a = await server();
    const b = await server();
    const { runner, welcomes } = daemon([a.url, b.url]);
    await runner.start();
    expect(runner.serverUrl).toBe(a.url);
    await closeServer(a);
    await until(() => welcomes.length === 2);
    expect(welcomes).toEqual([a.url, b.url]);
    expect((await b.store.runners.get("failover-runner"))?.status).toBe("online");
  });
});

interface SpoolOptions {
  memoryBytes?: number;
  totalBytes?: number;
  minFreeBytes?: number;
}

/**
 * Runs a step that prints 100,000 lines (1.79 MB) while its server is away, on a runner whose
 * spool has `spool`'s caps; `spooled` says when the runner holds all it will keep. Gives back the
 * run's stored events once the server is back and the run ended.
 */
async function printWhileAway(
  spool: SpoolOptions,
  spooled: (spoolDir: string) => boolean,
): Promise<{ events: EventOf[]; spoolDir: string }> {
  const home = mkdtempSync(join(tmpdir(), "runyard-spool-home-"));
  const work = mkdtempSync(join(tmpdir(), "runyard-spool-work-"));
  cleanups.push(async () => {
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  const adminToken = "ryt_spool_admin_token_0123456789abcdef";
  const start = async (port: number): Promise<RunningServer> => {
    const running = await startServer({
      host: "127.0.0.1",
      port,
      home,
      adminToken,
      timings: { heartbeatMs: 200, leaseMs: 5000 },
      reconnectGraceMs: 10_000,
      logger: silentLogger,
      version: "test",
      warn: () => undefined,
    });
    openServers.add(running);
    cleanups.push(() => closeServer(running));
    return running;
  };
  let live = await start(0);
  if (!(await live.store.tokens.find(runnerSecret)))
    await live.store.tokens.create({ kind: "runner", name: "spool", secret: runnerSecret });
  const spoolDir = join(work, "spool");
  const { runner } = daemon([live.url], {
    maxBackoffMs: 300,
    spool: { dir: spoolDir, memoryBytes: 4096, ...spool },
  });
  await runner.start();
  const go = join(work, "go");
  const workflow = `name: spool
inventory:
  hosts:
    worker: {}
steps:
  - name: print
    targets: [worker]
    action: shell.run
    args:
      script: |
        while [ ! -e ${go} ]; do sleep 0.05; done
        seq 1 100000 | sed 's/^/spooled line /'
`;
  const submitted = await fetch(`${live.url}/api/runs`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ kind: "workflow", workflow }),
  });
  const { run_id: runId } = (await submitted.json()) as { run_id: string };
  const port = Number(new URL(live.url).port);
  // The step has begun (its job is on the runner) before the server goes away.
  for (let tries = 0; (await live.store.runs.get(runId))?.status !== "running"; tries++) {
    if (tries > 400) throw new Error("the run never started");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await closeServer(live);
  writeFileSync(go, "");
  await until(() => spooled(spoolDir), 30_000);
  live = await start(port);
  for (let tries = 0; ; tries++) {
    const run = await live.store.runs.get(runId);
    if (run?.status === "success") break;
    if (tries > 1000) throw new Error(`the run did not end: ${run?.status}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { events: await live.store.events.list(runId, { limit: 100_000 }), spoolDir };
}

type EventOf = Awaited<ReturnType<RunningServer["store"]["events"]["list"]>>[number];

const spooledBytes = (spoolDir: string): number =>
  readdirSync(spoolDir).reduce((sum, name) => sum + statSync(join(spoolDir, name)).size, 0);

/** The notice of dropped output waits in the spool: the job ended, the runner holds all it will keep. */
const dropSpooled = (spoolDir: string): boolean =>
  readdirSync(spoolDir).some((name) =>
    readFileSync(join(spoolDir, name), "utf8").includes('"type":"notice"'),
  );

const outputText = (events: EventOf[]): string =>
  events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");

const outputLines = (events: EventOf[]): string[] => outputText(events).split("\n").filter(Boolean);

const allLines = Array.from({ length: 100_000 }, (_, i) => `spooled line ${i + 1}\n`).join("");

const notices = (events: EventOf[]): string[] =>
  events.flatMap((event) => (event.type === "notice" ? [event.message] : []));

describe("RunnerDaemon while its server is away", () => {
  it("keeps a step's output past its memory on disk and delivers every line once when the server is back", async () => {
    // 1.79 MB of output against 4 KB of memory: all of it but those 4 KB waits on disk (as
    // JSON lines, a little more). No batch is made while the server is away, so none holds a
    // window of it in memory (8 batches: 768 KB, or a few MB of large chunks on a busy machine).
    const { events, spoolDir } = await printWhileAway({}, (dir) => spooledBytes(dir) > 1_790_000);
    expect(outputLines(events)).toEqual(Array.from({ length: 100_000 }, (_, i) => `spooled line ${i + 1}`));
    expect(notices(events).some((message) => message.includes("dropped"))).toBe(false);
    // Delivered, the spool is gone.
    await until(() => spooledBytes(spoolDir) === 0, 8000);
  }, 90_000);

  it("drops output past the spool's overall cap, keeps what came before and says why in a notice", async () => {
    const { events } = await printWhileAway({ totalBytes: 200_000 }, dropSpooled);
    // What the spool kept arrives whole and in order; the rest is gone, said once with its cause.
    const text = outputText(events);
    expect(text.length).toBeGreaterThan(100_000);
    expect(text.length).toBeLessThan(400_000);
    expect(allLines.startsWith(text)).toBe(true);
    const dropped = notices(events).filter((message) => message.includes("dropped"));
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toMatch(
      /^\d+ characters of output were dropped: .*at most 200000 bytes of all its jobs' output .*RUNYARD_SPOOL_MAX_BYTES/,
    );
    expect(events.find((event) => event.type === "step.finished")).toMatchObject({ status: "success" });
  }, 90_000);

  it("drops output rather than take the disk's last free space, and says so in a notice", async () => {
    // A minimum above any disk's size: the disk is always short of it.
    const { events } = await printWhileAway({ minFreeBytes: Number.MAX_SAFE_INTEGER }, dropSpooled);
    // Only what the runner held in memory (a chunk or so past its 4 KB) came through.
    const text = outputText(events);
    expect(text.length).toBeLessThan(200_000);
    expect(allLines.startsWith(text)).toBe(true);
    const dropped = notices(events).filter((message) => message.includes("dropped"));
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toMatch(
      /the disk of the runner's spool \(.*\) has less than \d+ MiB free \(RUNYARD_SPOOL_MIN_FREE_BYTES\)/,
    );
    expect(events.find((event) => event.type === "step.finished")).toMatchObject({ status: "success" });
  }, 90_000);
});

describe("RunnerDaemon and the install of its server", () => {
  it("learns the install from the welcome, and handles no later message before its welcome work is done", async () => {
    const live = await server();
    const installId = await live.store.serverKeys.installId();
    const seen: string[] = [];
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const { runner } = daemon([live.url], {
      // Found at start: a bot this server never made, of its install, and one of another install.
      bots: {
        found: ["bot_gone", "bot_elsewhere"],
        installs: { bot_gone: installId, bot_elsewhere: "0123456789abcdef" },
        remove: async (botId) => {
          seen.push(`remove ${botId}`);
        },
      },
      onWelcome: async (named) => {
        seen.push(`welcome ${named}`);
        await gate;
        seen.push("welcome work done");
      },
    });
    const started = runner.start();
    await until(() => seen.length === 1);
    expect(seen).toEqual([`welcome ${installId}`]);
    open();
    await started;
    await until(() => seen.length === 3);
    // The server disowns its own install's unknown bot only, and says so after the welcome.
    expect(seen).toEqual([`welcome ${installId}`, "welcome work done", "remove bot_gone"]);
  });
});

/** Resolves once `predicate` holds, checking every 10 ms; fails after `timeoutMs`. */
async function until(predicate: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
