import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../core/logger.js";
import { createExecutor } from "../exec/create-executor.js";
import { LocalStepRunner } from "../exec/local-runner.js";
import { type RunningServer, startServer } from "../server/server.js";
import { StepJobHandler } from "./handlers/step.js";
import { RunnerDaemon } from "./runner.js";

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

function daemon(serverUrls: string[], options: { minBackoffMs?: number } = {}) {
  const executor = createExecutor({ baseEnv: { PATH: process.env.PATH ?? "" }, killGraceMs: 300 });
  cleanups.push(async () => executor.close());
  const welcomes: string[] = [];
  const runner = new RunnerDaemon({
    serverUrls,
    token: runnerSecret,
    info: {
      id: "failover-runner",
      group: "default",
      labels: [],
      mode: "all",
      capacity: 1,
      cpus: null,
      memory: null,
      hostname: "test",
      tenant_id: null,
      version: null,
      shared: false,
      isolation: "none",
    },
    handlers: { step: new StepJobHandler(new LocalStepRunner(executor, { killGraceMs: 300 })) },
    logger: silentLogger,
    ...options,
    onConnected: (url) => welcomes.push(url),
  });
  cleanups.push(() => runner.stop(0));
  return { runner, welcomes };
}

describe("RunnerDaemon with several servers", () => {
  it("goes on to the next server at once when the first refuses the connection", async () => {
    const live = await server();
    // A backoff this long would show: the next server must be tried without it.
    const { runner, welcomes } = daemon([await deadUrl(), live.url], { minBackoffMs: 5000 });
    const started = Date.now();
    await runner.start();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(runner.serverUrl).toBe(live.url);
    expect(welcomes).toEqual([live.url]);
  });

  it("waits out the backoff only after every server of a round failed", async () => {
    const first = await droppingEndpoint();
    const second = await droppingEndpoint();
    const { runner } = daemon([first.url, second.url], { minBackoffMs: 1000 });
    void runner.start();
    await until(() => first.arrivals.length >= 2);
    const [firstTry = 0, secondRound = 0] = first.arrivals;
    const secondTry = second.arrivals[0] ?? 0;
    // first -> second at once; then the backoff (1000 ms, +-20 %) before the next round.
    expect(secondTry - firstTry).toBeLessThan(500);
    expect(secondRound - secondTry).toBeGreaterThanOrEqual(750);
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

/** Resolves once `predicate` holds, checking every 10 ms; fails after `timeoutMs`. */
async function until(predicate: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
