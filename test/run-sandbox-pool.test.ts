import { mkdirSync, mkdtempSync, readdirSync, rmSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { findPidsHierarchy, type PidsHierarchy } from "../src/exec/sandbox/run-cgroup.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import { RunFolders, type RunPlace } from "../src/runner/run-folders.js";

/**
 * A sandboxing runner's pool of sandboxes made ahead (RunFolders, as `runyard up` has it: cloned
 * sandboxes, the fork-server): a taken one is made again once a job of a run here ends, or after a
 * quarter of a second if none does, never while the run that took it starts its first command.
 */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);

const root = mkdtempSync(join(tmpdir(), "runyard-pool-test-"));
const runsRoot = join(root, "runs");
mkdirSync(runsRoot);
const pids = findPidsHierarchy();
const problems: string[] = [];
const sandbox = new Sandbox({
  bwrap: probe.bwrap,
  hide: [join(root, "state")],
  ...("problem" in pids ? {} : { pids: { hierarchy: pids as PidsHierarchy, max: 64 } }),
  clones: { onFallback: (reason) => problems.push(`made by bubblewrap: ${reason}`) },
});
const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
  killGraceMs: 1000,
});
const runs = new RunFolders(join(root, "state"), runsRoot, 60_000, {
  sandbox,
  launcher,
  pool: 1,
  home: "/home/runner",
  idleMs: 60_000,
  onProblem: (problem) => problems.push(problem),
});

afterAll(async () => {
  await runs.close();
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

/** The pool's sandboxes made or being made: each has its own folder under the runs' root. */
const pooled = (): number => readdirSync(runsRoot).filter((name) => name.startsWith(".pool-")).length;

/** Resolves once the pool holds `count` (a folder made under the runs' root is its first sign). */
function poolHolds(count: number): Promise<void> {
  return new Promise((resolve) => {
    const watcher = watch(runsRoot, () => {
      if (pooled() !== count) return;
      watcher.close();
      resolve();
    });
    if (pooled() === count) {
      watcher.close();
      resolve();
    }
  });
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
  it("makes a taken sandbox again once a job of a run here ends, not while the run that took it starts", async () => {
    runs.fillPool();
    await poolHolds(1);
    const place = await runs.hold("run-a");
    expect(place.sandbox, "the run took the pooled sandbox").toBeDefined();
    // The run's first command starts and prints with no refill beside it: the pool is empty.
    expect(await step(place, "echo first; pwd")).toBe(`first\n${place.folder}\n`);
    expect(pooled(), "no refill while run a holds its first job").toBe(0);
    const refilled = poolHolds(1);
    runs.release("run-a");
    await refilled;
    expect(problems).toEqual([]);
  });

  it("makes it again a quarter of a second after the take when the run's job goes on", async () => {
    // The pool's sandbox is made (taking it waits for that), and run b keeps its job.
    const place = await runs.hold("run-b");
    expect(pooled()).toBe(0);
    expect(await step(place, "echo long-running")).toBe("long-running\n");
    await poolHolds(1);
    // Refilled while run b still holds its job; its sandbox is its own, the new one apart.
    expect(await step(place, "ls -d /proc/1 >/dev/null && echo still")).toBe("still\n");
    runs.release("run-b");
    expect(problems).toEqual([]);
  });
});
