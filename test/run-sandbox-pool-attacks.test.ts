import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RunFolders, type RunPlace } from "../src/runner/run-folders.js";
import { capturedLog } from "./helpers/captured-log.js";
import { pooledSandboxes, stepIn } from "./helpers/pooled-sandboxes.js";
import { until } from "./helpers/processes.js";

/*
 * A tenant's steps in a pooled run sandbox try to reach past their run: other runs' folders, links
 * left for the removal, kills of the holder, runs taking the pool side by side.
 */
const { root, sandbox, launcher, problems } = await pooledSandboxes("pool-attacks");
const canary = join(root, "canary");
mkdirSync(canary);
writeFileSync(join(canary, "keep"), "keep");
const runsRoot = join(root, "runs");
mkdirSync(runsRoot);
/** The runner's log (its removal of a run's folders is said there). */
const { logger, logged } = capturedLog();
const runs = new RunFolders(
  join(root, "state"),
  runsRoot,
  60_000,
  {
    sandbox,
    launcher,
    pool: 2,
    home: "/home/runner",
    idleMs: 60_000,
    refillWaitMs: 10,
    onProblem: (problem) => problems.push(problem),
  },
  logger,
);
runs.serverTellsEnds(true);

afterAll(async () => {
  await runs.close();
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

/** A step of the run whose place it is (stepIn). */
const step = (place: RunPlace, script: string, signal?: AbortSignal) =>
  stepIn(place, launcher, script, signal);

/** Resolves once the pool holds both its sandboxes (each has a folder under the runs' root). */
const pooledReady = (): Promise<void> =>
  until(
    "the pool holds two sandboxes",
    () => readdirSync(runsRoot).filter((n) => n.startsWith(".pool-")).length >= 2,
  );

describe("a tenant's step in a pooled sandbox", () => {
  it("sees only its own run's folder from its first command, with runs taking the pool side by side", async () => {
    runs.fillPool();
    await pooledReady();
    const [a, b] = await Promise.all([runs.hold("run-a"), runs.hold("run-b")]);
    const [sa, sb] = await Promise.all([
      step(a, `pwd; ls -a; echo a > mine; ls ${runsRoot} 2>&1; grep -c pool /proc/self/mountinfo || true`),
      step(b, `pwd; ls -a; echo b > mine; ls ${runsRoot} 2>&1`),
    ]);
    expect(sa.status, sa.stdout).toBe("success");
    expect(sb.status, sb.stdout).toBe("success");
    expect(sa.stdout.split("\n")[0]).toBe(a.folder);
    expect(sb.stdout.split("\n")[0]).toBe(b.folder);
    expect(sa.stdout).not.toContain("run-b");
    expect(sb.stdout).not.toContain("run-a");
    expect(readFileSync(join(a.folder, "mine"), "utf8")).toBe("a\n");
    expect(readFileSync(join(b.folder, "mine"), "utf8")).toBe("b\n");
    runs.release("run-a");
    runs.release("run-b");
    runs.ended("run-a");
    runs.ended("run-b");
  });

  it("cannot make the removal follow links or leave the run's folders, whatever it leaves behind", async () => {
    await pooledReady();
    const place = await runs.hold("run-links");
    const out = await step(
      place,
      [
        `ln -s ${canary} link; ln -s ${canary} /tmp/link; ln -s ${canary} $HOME/link`,
        `ln -s ${canary} $RUNYARD_OUTPUT/link; mkdir -p /tmp/d/e $HOME/d; ln -s ${canary} /tmp/d/e/x`,
        `ln -s / $RUNYARD_OUTPUT/root; chmod 000 /tmp/d`,
        "echo done",
      ].join("; "),
    );
    expect(out.stdout, JSON.stringify(out)).toBe("done\n");
    runs.release("run-links");
    runs.ended("run-links");
    await logged("removed run run-links's folders and sandbox");
    expect(existsSync(place.folder)).toBe(false);
    expect(existsSync(join(place.tmp, ".."))).toBe(false);
    expect(readFileSync(join(canary, "keep"), "utf8")).toBe("keep");
  });

  it("killing all it can (pid 1 included) leaves the next command its folders, in its own run", async () => {
    await pooledReady();
    const place = await runs.hold("run-kill");
    const first = await step(place, "echo x > mark; kill -9 1; kill -9 -1; sleep 1; echo alive");
    // Whatever became of the first, the next command runs with the run's folder and its file.
    const next = await step(place, "pwd; cat mark; cat /proc/1/cmdline | tr '\\0' ' '; echo");
    expect(next.status, JSON.stringify({ first, next })).toBe("success");
    expect(next.stdout.split("\n").slice(0, 2)).toEqual([place.folder, "x"]);
    runs.release("run-kill");
    runs.ended("run-kill");
  });

  it("a step canceled before it starts, first into the pooled sandbox, leaves its run's parallel step its folder", async () => {
    await pooledReady();
    const place = await runs.hold("run-canceled");
    const canceled = new AbortController();
    canceled.abort();
    const [first, parallel] = await Promise.all([
      step(place, "echo never > never", canceled.signal),
      step(place, "pwd; echo parallel > mine"),
    ]);
    expect(first.status).toBe("canceled");
    expect(parallel.status, parallel.stdout).toBe("success");
    expect(parallel.stdout).toBe(`${place.folder}\n`);
    expect(readFileSync(join(place.folder, "mine"), "utf8")).toBe("parallel\n");
    expect(existsSync(join(place.folder, "never"))).toBe(false);
    runs.release("run-canceled");
    runs.ended("run-canceled");
  });

  afterAll(() => {
    expect(problems).toEqual([]);
  });
});
