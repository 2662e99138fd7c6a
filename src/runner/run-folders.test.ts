import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RunFolders, type RunPlace } from "./run-folders.js";

/** A RunFolders of its own temp folders whose log lines a test can wait for. */
function folders(keepMs: number) {
  const root = mkdtempSync(join(tmpdir(), "runyard-run-folders-"));
  made.push(root);
  const lines: string[] = [];
  const waiters: Array<{ text: string; times: number; resolve: () => void }> = [];
  const count = (text: string) => lines.filter((line) => line.includes(text)).length;
  const logger = pino(
    { level: "debug" },
    {
      write: (line: string) => {
        const { msg } = JSON.parse(line) as { msg: string };
        lines.push(msg);
        for (const waiter of waiters) if (count(waiter.text) >= waiter.times) waiter.resolve();
      },
    },
  );
  /** Resolves once `text` was logged `times` times. */
  const logged = (text: string, times = 1): Promise<void> =>
    count(text) >= times
      ? Promise.resolve()
      : new Promise((resolve) => waiters.push({ text, times, resolve }));
  const runs = new RunFolders(join(root, "state"), join(root, "runs"), keepMs, undefined, logger);
  return { runs, logged, lines };
}

/** Releases the run's last job here and waits for the runner to say it removed its folders `why`. */
async function releasedAndRemoved(
  { runs, logged }: Pick<ReturnType<typeof folders>, "runs" | "logged">,
  runId: string,
  place: RunPlace,
  why: string,
): Promise<void> {
  runs.release(runId);
  await logged(`removed run ${runId}'s folders and sandbox: ${why}`);
  expect(existsSync(place.folder)).toBe(false);
  expect(existsSync(place.tmp)).toBe(false);
}

const made: string[] = [];
afterEach(() => {
  for (const root of made.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe("a run's folders on a runner", () => {
  it("stay while the run waits past the keep time, from a server that says runs' ends, and go at its end", async () => {
    const { runs, logged } = folders(20);
    runs.serverTellsEnds(true);
    const place = await runs.hold("run-1");
    writeFileSync(join(place.tmp, "kept.txt"), "x");
    runs.release("run-1");
    // The keep time passed, twice: the runner says it keeps them.
    await logged("its folders stay until it ends", 2);
    expect(existsSync(join(place.tmp, "kept.txt"))).toBe(true);
    expect(runs.kept()).toEqual(["run-1"]);
    // The next step of the run finds them.
    expect(await runs.hold("run-1")).toBe(place);
    runs.release("run-1");
    runs.ended("run-1");
    await logged("removed run run-1's folders and sandbox: its run ended");
    expect(existsSync(place.folder)).toBe(false);
    expect(existsSync(place.tmp)).toBe(false);
    expect(runs.kept()).toEqual([]);
  });

  it("stay while a job of the ended run is still held, and go when it ends", async () => {
    const { runs, logged, lines } = folders(60_000);
    runs.serverTellsEnds(true);
    const place = await runs.hold("run-2");
    runs.ended("run-2");
    expect(existsSync(place.tmp)).toBe(true);
    expect(lines.some((line) => line.includes("removed"))).toBe(false);
    await releasedAndRemoved({ runs, logged }, "run-2", place, "its run ended");
  });

  it("go after the keep time from a server that never says a run's end (an older one)", async () => {
    const made = folders(20);
    made.runs.serverTellsEnds(false);
    const place = await made.runs.hold("run-3");
    await releasedAndRemoved(made, "run-3", place, "it held no job here for 0.02 s");
  });

  it("go as the job of a run ends that came after the run's end was said", async () => {
    const made = folders(60_000);
    made.runs.serverTellsEnds(true);
    made.runs.ended("late");
    expect(made.runs.kept()).toEqual([]);
    const place = await made.runs.hold("late");
    await releasedAndRemoved(made, "late", place, "its run ended");
  });

  it("go whole at the run's end, links in them removed, not followed, and a tree deeper than the safe walk goes", async () => {
    const here = folders(60_000);
    here.runs.serverTellsEnds(true);
    const place = await here.runs.hold("deep");
    const outside = mkdtempSync(join(tmpdir(), "runyard-run-folders-outside-"));
    made.push(outside);
    writeFileSync(join(outside, "kept.txt"), "x");
    symlinkSync(outside, join(place.folder, "link"));
    // Deeper than removeTree walks (maxRemoveDepth), as a step can make it.
    execFileSync("perl", ["-e", 'for (1..200) { mkdir "d" or die; chdir "d" or die } open F, ">f" or die'], {
      cwd: place.home,
    });
    here.runs.ended("deep");
    await releasedAndRemoved(here, "deep", place, "its run ended");
    expect(existsSync(join(place.home, ".."))).toBe(false);
    expect(readdirSync(outside)).toEqual(["kept.txt"]);
  });
});
