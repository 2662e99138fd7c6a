import type { Socket } from "node:net";
import { type ProcessTimes, processTimes, treeCpuMs } from "./processes.js";
import {
  directSpawns,
  follow,
  idleSseClient,
  ownCpuMs,
  rssOf,
  runsInFlight,
  serverProcess,
  sqliteStore,
  submit,
  withRunner,
  withServer,
} from "./server.js";
import type { BenchRow } from "./table.js";
import { produce100MB } from "./workflow.js";

/** `runyard up` as a user starts it, its local runner taking `capacity` runs at once. */
function upProcess(env: Record<string, string> = {}) {
  return serverProcess({ RUNYARD_CAPACITY: "8", ...env }, sqliteStore, "up");
}

/**
 * Trivial runs per second through `runyard up` (one process: server and local runner), a client
 * keeping 8 runs in flight (submit, follow over SSE to the end, submit the next), against a
 * fresh Node process spawning the command 8 at a time. The ratio is of runs per second of CPU
 * time (`runyard up`'s process tree against the spawning process's), wall rates beside, and how
 * a run's CPU splits between the `runyard up` process and the steps it starts (bubblewrap, the
 * fork-server, the command). Beside it: an in-process server and runner of capacity 8, driven
 * the same way.
 */
export async function runThroughput(): Promise<BenchRow> {
  const count = 400;
  const direct = directSpawns(count, 8);
  const up = await upProcess();
  const pid = up.child.pid ?? 0;
  let rate: number;
  let perCpuSecond: number;
  let split: string;
  try {
    await runsInFlight(up.url, 16, 8); // warm-up: routes, statements, the runner's first spawns
    const cpuBefore = treeCpuMs(pid);
    const ownBefore = ownCpuMs(pid);
    rate = await runsInFlight(up.url, count, 8);
    const treeMs = treeCpuMs(pid) - cpuBefore;
    perCpuSecond = count / (treeMs / 1000);
    // The `runyard up` process (server and runner) apart from the steps it starts (sandbox, fork-server).
    const ownMs = (ownCpuMs(pid) - ownBefore) / count;
    split = `; a run: ${ownMs.toFixed(1)} ms in runyard up, ${(treeMs / count - ownMs).toFixed(1)} ms in its steps`;
  } finally {
    up.child.kill();
  }
  const inProcess = await withServer(sqliteStore, (server, token) =>
    withRunner(server.url, token, 8, async () => {
      await runsInFlight(server.url, 16, 8);
      return runsInFlight(server.url, count, 8);
    }),
  );
  return {
    name: "runyard up: trivial runs/s, 8 in flight vs direct spawns 8 at a time",
    measured: `${perCpuSecond.toFixed(0)} runs/CPU-s (${rate.toFixed(0)} runs/s wall${split})`,
    inProcess: `${inProcess.toFixed(0)} runs/s`,
    baseline: `${direct.perCpuSecond.toFixed(0)} spawns/CPU-s (${direct.perSecond.toFixed(0)}/s wall)`,
    ratio: perCpuSecond / direct.perCpuSecond,
    target: ">= 0.6",
  };
}

/**
 * One step printing 100 MB, read by an SSE client through `runyard up` (submit to the stream's
 * end), against `sh -c` of the same pipeline to /dev/null. The run log cap is raised to 300 MB
 * so that the whole output is stored and sent. The ratio is of CPU time: `runyard up`'s process
 * tree (server, runner, the step) over the run against the pipeline's own; the client reading
 * the stream is this process and counts on neither side.
 */
export async function outputToSseClient(): Promise<BenchRow> {
  const workflow = `name: big\nsteps:\n  - name: big\n    action: shell.run\n    args:\n      script: |\n        ${produce100MB}\n`;
  const up = await upProcess({ RUNYARD_MAX_RUN_LOG_BYTES: String(300 * 1024 * 1024) });
  const pid = up.child.pid ?? 0;
  const runs: ProcessTimes[] = [];
  const bases: ProcessTimes[] = [];
  let bytes = 0;
  try {
    for (let i = 0; i < 3; i++) {
      bases.push(await processTimes("sh", ["-c", produce100MB]));
      const cpuBefore = treeCpuMs(pid);
      const start = performance.now();
      const runId = await submit(up.url, workflow);
      const followed = await follow(up.url, runId);
      runs.push({ wallMs: followed.end - start, cpuMs: treeCpuMs(pid) - cpuBefore });
      bytes = followed.bytes;
      // A run cut short (log cap, output cap) would stream fewer bytes faster: no figure then.
      if (followed.status !== "success" || bytes < 100 * 1048576) {
        throw new Error(`the 100 MB run ${runId} ended ${followed.status} after ${bytes} bytes of SSE`);
      }
    }
  } finally {
    up.child.kill();
  }
  const mid = (values: ProcessTimes[]): ProcessTimes => ({
    wallMs: [...values.map((v) => v.wallMs)].sort((a, b) => a - b)[1] ?? 0,
    cpuMs: [...values.map((v) => v.cpuMs)].sort((a, b) => a - b)[1] ?? 0,
  });
  const mbps = (ms: number): string => `${(100 / (ms / 1000)).toFixed(0)} MB/s`;
  const both = (times: ProcessTimes): string => `${mbps(times.cpuMs)} of CPU (${mbps(times.wallMs)} wall)`;
  return {
    name: "runyard up: one step printing 100 MB to an SSE client vs sh > /dev/null",
    measured: `${both(mid(runs))}, ${(bytes / 1048576).toFixed(0)} MB of SSE`,
    baseline: both(mid(bases)),
    ratio: mid(bases).cpuMs / mid(runs).cpuMs,
    target: ">= 0.5",
  };
}

/**
 * `runyard server` with no runner: 10,000 runs submitted (all stay queued), then 200 SSE clients
 * that follow queued runs and never read. The figure is the server process's RSS against the
 * 250 MB budget; the idle server's RSS is shown beside it.
 */
export async function queuedRunsMemory(): Promise<BenchRow> {
  const server = await serverProcess({ RUNYARD_DEFAULT_MAX_QUEUED_RUNS: "20000" });
  const pid = server.child.pid ?? 0;
  const sockets: Socket[] = [];
  try {
    const idle = rssOf(pid);
    const ids: string[] = [];
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < 10_000) {
        next++;
        ids.push(await submit(server.url));
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
    for (let i = 0; i < 200; i++) sockets.push(await idleSseClient(server.url, ids[i] ?? ""));
    // The peak over the next second: what the clients cost shows once the server has answered them.
    let loaded = rssOf(pid);
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      loaded = Math.max(loaded, rssOf(pid));
    }
    const mb = (bytes: number): number => bytes / 1048576;
    return {
      name: "server RSS, 10,000 queued runs and 200 idle SSE clients",
      measured: `${mb(loaded).toFixed(0)} MB`,
      baseline: `250 MB budget (idle ${mb(idle).toFixed(0)} MB)`,
      ratio: mb(loaded) / 250,
      target: "<= 1",
    };
  } finally {
    for (const socket of sockets) socket.destroy();
    server.child.kill();
  }
}
