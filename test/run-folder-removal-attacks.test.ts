import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RunFolders, type RunPlace } from "../src/runner/run-folders.js";
import { capturedLog } from "./helpers/captured-log.js";
import { pooledSandboxes, stepIn } from "./helpers/pooled-sandboxes.js";

/*
 * A tenant's steps in a run sandbox leave its folders (the run's own, /tmp, $HOME, scratch) as
 * hard to remove as they can at the run's end: links to what is outside, trees deeper than the
 * removal's walk, names no path can hold, fifos and sockets, processes left running.
 */
const { root, sandbox, launcher, problems } = await pooledSandboxes("removal-attacks");
const canary = join(root, "canary");
mkdirSync(canary);
writeFileSync(join(canary, "keep"), "keep");
const state = join(root, "state");
const runsRoot = join(root, "runs");
mkdirSync(runsRoot);
/** The runner's log (its removal of a run's folders is said there). */
const { logger, logged } = capturedLog();
const settings = {
  sandbox,
  launcher,
  pool: 0,
  home: "/home/runner",
  idleMs: 60_000,
  onProblem: (problem: string) => problems.push(problem),
};
const runs = new RunFolders(state, runsRoot, 60_000, settings, logger);
runs.serverTellsEnds(true);

afterAll(async () => {
  await runs.close();
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

/** A step of the run whose place it is (stepIn). */
const step = (place: RunPlace, script: string, signal?: AbortSignal) =>
  stepIn(place, launcher, script, signal);

/** Ends the run (its one job released) and waits for the runner to say its folders went. */
async function ended(runId: string): Promise<void> {
  runs.release(runId);
  runs.ended(runId);
  await logged(`removed run ${runId}'s folders and sandbox`);
}

const gone = (place: RunPlace): boolean => !existsSync(place.folder) && !existsSync(join(place.tmp, ".."));

/** A perl line that makes a chain of `depth` folders named `name` from the cwd, with `leaf` made at its end. */
const chainScript = (depth: number, name: string, leaf: string) =>
  `for (1..${depth}) { mkdir "${name}" or die; chdir "${name}" or die } ${leaf}`;
const chain = (depth: number, name: string, leaf: string) => `perl -e '${chainScript(depth, name, leaf)}'`;

describe("a run's folders removed at its end, as a tenant's step leaves them", () => {
  it("never follow a link out, at any depth, past the walk's too: another run's folder, the runner's state, copies of /etc", async () => {
    const other = await runs.hold("run-other");
    writeFileSync(join(other.folder, "theirs"), "theirs");
    const etc = join(root, "etc-copy");
    mkdirSync(etc);
    writeFileSync(join(etc, "passwd"), "root:x:0:0::/root:/bin/sh\n");
    mkdirSync(state, { recursive: true });
    writeFileSync(join(state, "runner-secret"), "s");
    const place = await runs.hold("run-links");
    const targets = [
      canary,
      other.folder,
      state,
      etc,
      join(etc, "passwd"),
      join(other.folder, "theirs"),
      "/",
    ];
    const links = targets.map((target, i) => `ln -s ${target} l${i}`).join("; ");
    const out = await step(
      place,
      [
        `${links}; cd /tmp && ${links}; cd $HOME && ${links}; cd $RUNYARD_OUTPUT && ${links}`,
        // Deeper than the walk goes (maxRemoveDepth), links at its bottom: the fallback's to remove.
        `cd ${place.folder} && ${chain(200, "d", `for my $t (${targets.map((t) => `"${t}"`).join(",")}) { symlink $t, "l" . $i++ or die }`)}`,
        `cd $HOME && ${chain(140, "d", 'symlink "/", "root" or die')}`,
        "echo done",
      ].join("\n"),
    );
    expect(out.stdout, JSON.stringify(out)).toBe("done\n");
    await ended("run-links");
    expect(gone(place)).toBe(true);
    expect(readdirSync(canary)).toEqual(["keep"]);
    expect(readFileSync(join(other.folder, "theirs"), "utf8")).toBe("theirs");
    expect(readFileSync(join(etc, "passwd"), "utf8")).toContain("root:x");
    expect(readFileSync(join(state, "runner-secret"), "utf8")).toBe("s");
    runs.release("run-other");
    runs.ended("run-other");
  });

  it("go whole where the tree is deeper than any path can name (its names long), and the runner starts again after", async () => {
    const place = await runs.hold("run-deep-long");
    const long = "x".repeat(200);
    const out = await step(
      place,
      [
        chain(300, long, 'open F, ">f" or die'),
        `cd /tmp && ${chain(300, long, 'open F, ">f" or die')}`,
        "echo done",
      ].join("\n"),
    );
    expect(out.stdout, JSON.stringify(out)).toBe("done\n");
    await ended("run-deep-long");
    expect(gone(place)).toBe(true);
    // What a previous life left is removed as the next starts, without failing it.
    const leftover = join(runsRoot, "leftover");
    mkdirSync(leftover);
    execFileSync("perl", ["-e", chainScript(300, long, "")], { cwd: leftover });
    const next = new RunFolders(state, runsRoot, 60_000, undefined, logger);
    await expect(next.cleanLeftovers()).resolves.toContain(leftover);
    expect(existsSync(leftover)).toBe(false);
  });

  it("go with fifos, sockets, names with newlines and of 255 bytes, and nothing waits on them", async () => {
    const place = await runs.hold("run-odd");
    const long = "y".repeat(255);
    const odd = [
      "mkfifo fifo; mkfifo 'fi\nfo'",
      `python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind("sock")' 2>/dev/null || perl -MSocket -e 'socket(S, PF_UNIX, SOCK_STREAM, 0) or die; bind(S, pack_sockaddr_un("sock")) or die'`,
      `mkdir -p 'new\nline/${long}' && touch 'new\nline/${long}/${long}' && mkfifo '${long}.p'`,
    ].join("; ");
    const out = await step(
      place,
      [`${odd}`, `cd /tmp && ${odd}`, `cd $HOME && ${odd}`, "ls -b | head -20 >&2; echo done"].join("\n"),
    );
    expect(out.stdout, JSON.stringify(out)).toBe("done\n");
    await ended("run-odd");
    expect(gone(place)).toBe(true);
  });

  it("go with processes left running in them, swapping folders for links, ended before the removal", async () => {
    const place = await runs.hold("run-busy");
    const out = await step(
      place,
      [
        chain(150, "d", 'open F, ">f" or die'),
        // Left running after the step: it swaps a folder for a link to the canary, again and again.
        `(while :; do mkdir -p w/x; ln -sfn ${canary} l; mv -T l w 2>/dev/null; rm -rf w; done) >/dev/null 2>&1 &`,
        `(cd /tmp && while :; do ln -sfn ${canary} t; mkdir -p u; done) >/dev/null 2>&1 &`,
        "sleep 0.3; echo done",
      ].join("\n"),
    );
    expect(out.stdout, JSON.stringify(out)).toBe("done\n");
    await ended("run-busy");
    expect(gone(place)).toBe(true);
    expect(readdirSync(canary)).toEqual(["keep"]);
  });

  afterAll(() => {
    expect(problems).toEqual([]);
  });
});
