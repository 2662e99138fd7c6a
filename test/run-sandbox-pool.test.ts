import { type FSWatcher, mkdirSync, readdirSync, rmSync, watch, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RunFolders, type RunPlace } from "../src/runner/run-folders.js";
import { pooledSandboxes } from "./helpers/pooled-sandboxes.js";

/**
 * A sandboxing runner's pool of sandboxes made ahead (RunFolders, as `runyard up` has it: cloned
 * sandboxes, the fork-server): a taken one is made again once a job of a run here ends, at a
 * second take, or after its wait (a quarter of a second by default), never while the run that
 * took it starts its first command.
 */
const { root, sandbox, launcher, problems } = await pooledSandboxes("pool-test");
const made: RunFolders[] = [];
const watchers = new Set<FSWatcher>();

afterAll(async () => {
  for (const watcher of watchers) watcher.close();
  await Promise.all(made.map((runs) => runs.close()));
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

/**
 * A runner's RunFolders keeping `pool` sandboxes, its runs' folders under `<root>/runs/<name>`;
 * `refillWaitMs` as RunSandboxSettings has it (the runner's default where unset). Answers it with
 * `pooled` and `poolHolds`.
 */
function runner(name: string, pool: number, refillWaitMs?: number) {
  const runsRoot = join(root, "runs", name);
  mkdirSync(runsRoot, { recursive: true });
  const runs = new RunFolders(join(root, "state", name), runsRoot, 60_000, {
    sandbox,
    launcher,
    pool,
    home: "/home/runner",
    idleMs: 60_000,
    ...(refillWaitMs !== undefined ? { refillWaitMs } : {}),
    onProblem: (problem) => problems.push(problem),
  });
  made.push(runs);
  /** The pool's sandboxes made or being made: each has its own folder under the runs' root. */
  const pooled = (): number => readdirSync(runsRoot).filter((entry) => entry.startsWith(".pool-")).length;
  /** Resolves once the pool holds `count` (a folder made under the runs' root is its first sign). */
  const poolHolds = (count: number): Promise<void> =>
    new Promise((resolve) => {
      const watcher = watch(runsRoot, () => {
        if (pooled() !== count) return;
        watcher.close();
        watchers.delete(watcher);
        resolve();
      });
      watchers.add(watcher);
      if (pooled() === count) {
        watcher.close();
        watchers.delete(watcher);
        resolve();
      }
    });
  runs.fillPool();
  return { runs, pooled, poolHolds };
}

/** Runs `script` as a step of the run in `place`, in its sandbox; answers its stdout. */
async function step(place: RunPlace, script: string): Promise<string> {
  let stdout = "";
  const result = await place.sandbox?.run(
    {
      argv: ["/bin/sh", "-c", script],
      env: { PATH: "/usr/bin:/bin", HOME: "/home/runner" },
      cwd: place.folder,
      // What the runner's steps are given: the run's own /tmp and home (RunFolders' layout).
      exposure: { tmp: place.tmp, homeFolder: place.home },
      killGraceMs: 1000,
      onOutput: (stream, data) => {
        if (stream === "stdout") stdout += data;
      },
    },
    launcher,
  );
  expect(result?.status, JSON.stringify(result)).toBe("success");
  return stdout;
}

describe("a runner's pool of sandboxes made ahead", () => {
  // Its fallback out of the way: only a job's end or a second take may refill it.
  const { runs, pooled, poolHolds } = runner("ends", 2, 600_000);

  it("makes a taken sandbox again once a job of a run here ends, not while the run that took it starts", async () => {
    await poolHolds(2);
    const place = await runs.hold("run-a");
    expect(place.sandbox, "the run took a pooled sandbox").toBeDefined();
    // The run's first command starts and prints with no refill beside it.
    expect(await step(place, "echo first; pwd")).toBe(`first\n${place.folder}\n`);
    expect(pooled(), "no refill while run a holds its first job").toBe(1);
    const refilled = poolHolds(2);
    runs.release("run-a");
    await refilled;
    expect(problems).toEqual([]);
  });

  it("makes both again at the second take of a burst, with no job ended", async () => {
    const first = await runs.hold("run-b");
    expect(pooled()).toBe(1);
    const refilled = poolHolds(2);
    const second = await runs.hold("run-c");
    await refilled;
    expect(await step(first, "echo b")).toBe("b\n");
    expect(await step(second, "echo c")).toBe("c\n");
    runs.release("run-b");
    runs.release("run-c");
    expect(problems).toEqual([]);
  });

  it("gives a run whose folder still stands (a runner killed mid-run) fresh folders, the pooled sandbox not used, and leaves neither behind", async () => {
    await poolHolds(2);
    const stale = join(root, "runs", "ends", "run-e");
    mkdirSync(join(stale, "left"), { recursive: true });
    writeFileSync(join(stale, "left", "file"), "x");
    const place = await runs.hold("run-e");
    // Its pooled sandbox could not be renamed over the folder: closed and its folder removed.
    expect(pooled()).toBe(1);
    expect(place.folder).toBe(stale);
    expect(readdirSync(place.folder)).toEqual([]);
    expect(await step(place, "echo fresh; pwd")).toBe(`fresh\n${place.folder}\n`);
    runs.release("run-e");
    expect(problems).toEqual([]);
  });

  it("makes it again after its wait when the run that took it keeps its job", async () => {
    // The wait a runner has (a quarter of a second).
    const waiting = runner("waits", 1);
    await waiting.poolHolds(1);
    const place = await waiting.runs.hold("run-d");
    expect(await step(place, "echo long-running")).toBe("long-running\n");
    // Refilled while run d still holds its job.
    await waiting.poolHolds(1);
    expect(await step(place, "echo still")).toBe("still\n");
    waiting.runs.release("run-d");
    expect(problems).toEqual([]);
  });
});
