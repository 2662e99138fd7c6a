import { lstatSync, mkdirSync, readdirSync, realpathSync, rmSync, symlinkSync, watch } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RunFolders, type RunPlace } from "../src/runner/run-folders.js";
import { pooledSandboxes, stepIn } from "./helpers/pooled-sandboxes.js";

/**
 * Attacks on the real paths the runs' sandbox keeps for the folders the runner made
 * (Sandbox.madeFolder): a step of the run, in the sandbox `runyard up` gives it (pooled, cloned),
 * tries to turn a folder the sandbox answers from memory into a link; a run's folders removed and
 * made again must be looked up anew.
 */
const { root, sandbox, launcher, problems } = await pooledSandboxes("cache-attacks");
const runsRoot = join(root, "runs");
mkdirSync(runsRoot, { recursive: true });
const runs = new RunFolders(join(root, "state"), runsRoot, 60_000, {
  sandbox,
  launcher,
  pool: 1,
  home: "/home/runner",
  idleMs: 60_000,
  onProblem: (problem) => problems.push(problem),
});
runs.fillPool();
const elsewhere = join(root, "elsewhere");
mkdirSync(elsewhere);

afterAll(async () => {
  await runs.close();
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

/** The folders the sandbox answers from memory for `place`. */
function cachedFolders(place: RunPlace): string[] {
  return [place.folder, join(place.scratch, "outputs"), join(place.scratch, "scripts")];
}

/** Each cached answer is what the file system says now, and none of the folders is a link. */
function expectTrue(place: RunPlace): void {
  for (const folder of cachedFolders(place)) {
    expect(lstatSync(folder).isSymbolicLink(), folder).toBe(false);
    expect(sandbox.realPath(folder), folder).toBe(realpathSync(folder));
  }
}

/** Resolves once `path` is gone (the run's folders removed at its end). */
function gone(path: string): Promise<void> {
  return new Promise((resolve) => {
    const watcher = watch(runsRoot, () => {
      if (readdirSync(runsRoot).includes(path.slice(runsRoot.length + 1))) return;
      watcher.close();
      resolve();
    });
    if (!readdirSync(runsRoot).includes(path.slice(runsRoot.length + 1))) {
      watcher.close();
      resolve();
    }
  });
}

describe("the real paths a run's sandbox keeps for the runner's own folders", () => {
  it("stay true when a step tries to move, remove or replace its run's folder and scratch folders", async () => {
    const place = await runs.hold("run-swap");
    const script = [
      'here="$PWD"',
      `mv "$here" "$here.moved" 2>/dev/null && echo MOVED-FOLDER`,
      `mv "$RUNYARD_OUTPUT" "$RUNYARD_OUTPUT.moved" 2>/dev/null && echo MOVED-OUTPUTS`,
      `rmdir "$RUNYARD_OUTPUT" 2>/dev/null && echo REMOVED-OUTPUTS`,
      `rmdir "$here" 2>/dev/null && echo REMOVED-FOLDER`,
      `ln -s ${elsewhere} "$here.next" 2>/dev/null; mv -T "$here.next" "$here" 2>/dev/null && echo LINKED-FOLDER`,
      `ln -s ${elsewhere} "$RUNYARD_OUTPUT.next" 2>/dev/null; mv -T "$RUNYARD_OUTPUT.next" "$RUNYARD_OUTPUT" 2>/dev/null && echo LINKED-OUTPUTS`,
      `scripts="$(dirname "$RUNYARD_OUTPUT")/scripts"`,
      `mv "$scripts" "$scripts.moved" 2>/dev/null && echo MOVED-SCRIPTS`,
      "echo tried",
    ].join("\n");
    const first = await stepIn(place, launcher, script);
    expect(first).toEqual({ status: "success", stdout: "tried\n" });
    expectTrue(place);
    // Nothing of the step's reached the host beside the run's folders.
    expect(readdirSync(runsRoot).filter((name) => !name.startsWith(".pool-"))).toEqual(["run-swap"]);
    // A second step of the run still works in the run's own folder.
    expect((await stepIn(place, launcher, "pwd; ls -A")).stdout).toBe(`${place.folder}\n`);
    runs.release("run-swap");
    runs.ended("run-swap");
    expect(problems).toEqual([]);
  });

  it("are looked up anew once the run's folders are removed, and again when a later job of the run makes them", async () => {
    const place = await runs.hold("run-again");
    expect((await stepIn(place, launcher, "echo one > note; echo ok")).stdout).toBe("ok\n");
    runs.release("run-again");
    const removed = gone(place.folder);
    runs.ended("run-again");
    await removed;
    // Whatever stands at its name now is what the sandbox answers, not what it made before.
    symlinkSync(elsewhere, place.folder);
    expect(sandbox.realPath(place.folder)).toBe(realpathSync(elsewhere));
    rmSync(place.folder);
    // A later job of the same run: fresh folders, made now, known again.
    const again = await runs.hold("run-again");
    expect(again.folder).toBe(place.folder);
    expectTrue(again);
    expect((await stepIn(again, launcher, "ls -A; echo fresh")).stdout).toBe("fresh\n");
    runs.release("run-again");
    runs.ended("run-again");
    expect(problems).toEqual([]);
  });

  it("forgets a pooled sandbox's folders once they are renamed for the run that took them", async () => {
    // The pool's folder as it stands now, taken by the next run.
    const [pooledName] = await new Promise<string[]>((resolve) => {
      const look = () => readdirSync(runsRoot).filter((name) => name.startsWith(".pool-"));
      const watcher = watch(runsRoot, () => {
        if (look().length === 0) return;
        watcher.close();
        resolve(look());
      });
      if (look().length > 0) {
        watcher.close();
        resolve(look());
      }
    });
    const poolFolder = join(runsRoot, pooledName!);
    const place = await runs.hold("run-pooled");
    expect(readdirSync(runsRoot)).not.toContain(pooledName);
    symlinkSync(elsewhere, poolFolder);
    expect(sandbox.realPath(poolFolder)).toBe(realpathSync(elsewhere));
    rmSync(poolFolder);
    expectTrue(place);
    expect((await stepIn(place, launcher, "pwd")).stdout).toBe(`${place.folder}\n`);
    runs.release("run-pooled");
    runs.ended("run-pooled");
    expect(problems).toEqual([]);
  });
});

describe("a pooled run sandbox whose door was adopted (a clone sends no 'O')", () => {
  it("runs a run's next command after its first killed every process it could see, door included", async () => {
    const place = await runs.hold("run-kills");
    const first = await stepIn(place, launcher, "echo before; kill -9 -1; echo after");
    expect(first.stdout).toContain("before\n");
    const next = await stepIn(place, launcher, "echo next");
    expect(next).toEqual({ status: "success", stdout: "next\n" });
    runs.release("run-kills");
    runs.ended("run-kills");
  });
  it("runs a run's next command after its first was refused before it reached the door", async () => {
    const place = await runs.hold("run-refused-first");
    const refused = await place.sandbox?.run(
      {
        argv: ["/bin/sh", "-c", "echo never"],
        env: { PATH: "/usr/bin:/bin", HOME: "/home/runner", BAD: "a\0b" },
        cwd: place.folder,
        exposure: { tmp: place.tmp, homeFolder: place.home },
        killGraceMs: 1000,
        onOutput: () => undefined,
      },
      launcher,
    );
    expect(refused?.status).not.toBe("success");
    const next = await stepIn(place, launcher, "echo next; pwd");
    expect(next).toEqual({ status: "success", stdout: `next\n${place.folder}\n` });
    runs.release("run-refused-first");
    runs.ended("run-refused-first");
  });
});
