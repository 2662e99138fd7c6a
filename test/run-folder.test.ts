import {
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, tempDir } from "./helpers/cli.js";
import {
  type MemberStep,
  memberWorkflow,
  outputLine,
  runEnded,
  runOutput,
  submitWorkflow,
} from "./helpers/member-runs.js";
import { fileAppears, until } from "./helpers/processes.js";
import { runEvent } from "./helpers/run-event.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { waitForRun } from "./helpers/server.js";

/**
 * A run on a sandboxing runner (`runyard up` as users have it) that names no cwd: it works in a
 * folder of its own, in one sandbox its steps share, and can change nothing of the runner's
 * own (its working folder, its home, the checkout it runs from), nor see another run's folder.
 */
let up: SandboxedUp;

beforeAll(async () => {
  // Its runs' folders go at their ends, as the server says them: no keep timer of the runner's.
  up = await startSandboxedUp();
});

afterAll(async () => {
  await up?.proc.kill();
});

const submit = (steps: MemberStep[]) =>
  submitWorkflow(up.url, memberWorkflow(steps, "run-folder"), up.userToken);
const ended = runEnded;
const outputOf = (runId: string) => runOutput(up.url, runId);
const line = outputLine;

/**
 * A last step that holds its run until the test has looked at the run's folder on the host (the
 * folder goes as the run ends) and written `release` there.
 */
const holdStep: MemberStep = {
  name: "hold",
  script: 'echo "held=$(pwd)"\ntouch held\nwhile [ ! -e release ]; do sleep 0.05; done',
};

/** The run's folder on the host, once its `holdStep` holds the run. */
async function heldFolder(runId: string): Promise<string> {
  const said = await runEvent(
    up.url,
    runId,
    (event) => event.type === "step.output" && /^held=/m.test(event.data),
  );
  const folder = line(said.type === "step.output" ? said.data : "", "held")!;
  await fileAppears(join(folder, "held"), 30_000);
  return folder;
}

describe("a run that names no cwd", () => {
  it("works in a folder of its own, in one sandbox that its steps share with their /tmp and $HOME", async () => {
    const runId = await submit([
      {
        name: "first",
        script: [
          'echo "folder=$(pwd)"',
          'echo "ns=$(readlink /proc/self/ns/pid)"',
          "echo made-by-first > note.txt",
          'echo home-note > "$HOME/home.txt"',
          "echo tmp-note > /tmp/tmp.txt",
        ].join("\n"),
      },
      {
        name: "second",
        script: [
          'echo "folder2=$(pwd)"',
          'echo "ns2=$(readlink /proc/self/ns/pid)"',
          'cat note.txt "$HOME/home.txt" /tmp/tmp.txt',
        ].join("\n"),
      },
      holdStep,
    ]);
    const held = await heldFolder(runId);
    expect(readFileSync(join(held, "note.txt"), "utf8")).toBe("made-by-first\n");
    writeFileSync(join(held, "release"), "");
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    const folder = line(output, "folder");
    expect(folder).toMatch(new RegExp(`/runs/${runId}$`));
    expect(folder).not.toBe(up.work);
    expect(line(output, "folder2")).toBe(folder);
    // The same pid namespace: the second step entered the sandbox the first one made.
    expect(line(output, "ns")).toMatch(/^pid:\[\d+\]$/);
    expect(line(output, "ns2")).toBe(line(output, "ns"));
    expect(output).toContain("made-by-first\nhome-note\ntmp-note\n");
    expect(held).toBe(folder);
    // Its folder goes once the run is over, like its /tmp.
    await until("the run's folder is removed", () => !existsSync(folder!), 18_000);
  });

  it("starts in a sandbox the runner made before the run was submitted (its pool), given the run's folders", async () => {
    // Seconds since boot, as /proc/<pid>/stat counts a process's start (in ticks of 1/100 s).
    const submittedAt = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    const runId = await submit([
      {
        name: "first",
        script: [
          'echo "init-started=$(cut -d" " -f22 /proc/1/stat)"',
          'echo "folder=$(pwd)"',
          `echo "scratch=$(dirname "$(dirname "$RUNYARD_OUTPUT")")"`,
          "touch made-here",
        ].join("\n"),
      },
      holdStep,
    ]);
    const held = await heldFolder(runId);
    expect(existsSync(join(held, "made-here"))).toBe(true);
    writeFileSync(join(held, "release"), "");
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(Number(line(output, "init-started")) / 100).toBeLessThan(submittedAt);
    const folder = line(output, "folder")!;
    expect(folder).toMatch(new RegExp(`/runs/${runId}$`));
    expect(held).toBe(folder);
    expect(line(output, "scratch")).toMatch(new RegExp(`/runners/[^/]+/runs/${runId}/scratch$`));
  });

  it("gets another sandbox and folder than a run beside it, and cannot reach that run's folder", async () => {
    const first = await submit([{ name: "a", script: 'echo "folder=$(pwd)"; echo secret-of-a > a.txt' }]);
    await waitForRun(up.url, first, ended);
    const folderA = line(await outputOf(first), "folder")!;
    const second = await submit([
      {
        name: "b",
        env: { OTHER: folderA },
        script: [
          'echo "folder=$(pwd)"',
          'cat "$OTHER/a.txt" 2>/dev/null && echo LEAK-read || echo no-read',
          'echo planted > "$OTHER/b.txt" 2>/dev/null && echo LEAK-write || echo no-write',
          'ls "$(dirname "$(pwd)")" | grep -vx "$(basename "$(pwd)")" | grep -q . && echo LEAK-listing || echo no-listing',
        ].join("\n"),
      },
    ]);
    const view = await waitForRun(up.url, second, ended);
    const output = await outputOf(second);
    expect(view.status, output).toBe("success");
    expect(line(output, "folder")).not.toBe(folderA);
    expect(output).not.toContain("LEAK");
    for (const blocked of ["read", "write", "listing"]) expect(output).toContain(`no-${blocked}\n`);
    expect(existsSync(join(folderA, "b.txt"))).toBe(false);
  });

  it("cannot change the folder the runner writes its steps' scripts to, so no step can redirect that write", async () => {
    const runId = await submit([
      {
        name: "swap",
        script: [
          'scripts="$(dirname "$(dirname "$RUNYARD_OUTPUT")")/scripts"',
          'echo "scripts=$scripts"',
          'test -d "$scripts" && echo scripts-shown',
          'touch "$scripts/planted" 2>/dev/null && echo LEAK-write || echo no-write',
          'mv "$scripts" "$scripts.moved" 2>/dev/null && echo LEAK-move || echo no-move',
          'echo exported=yes >> "$RUNYARD_OUTPUT"',
        ].join("\n"),
      },
    ]);
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(line(output, "scripts")).toMatch(new RegExp(`/runs/${runId}/scratch/scripts$`));
    expect(output).toContain("scripts-shown\n");
    for (const blocked of ["write", "move"]) expect(output).toContain(`no-${blocked}\n`);
  });

  it("can change nothing the operator runs later: the runner's working folder, its home, the checkout", async () => {
    const cli = join(repoRoot, "bin", "runyard.js");
    const before = statSync(cli).mtimeMs;
    writeFileSync(join(up.work, "deploy.sh"), "echo operator's own\n");
    const runId = await submit([
      {
        name: "attack",
        env: { WORK: up.work, HOME_DIR: up.home, CLI: cli },
        script: [
          'echo pwned > "$WORK/deploy.sh" 2>/dev/null',
          'mkdir -p "$WORK/.git" 2>/dev/null && echo "[core] fsmonitor = x" > "$WORK/.git/config" 2>/dev/null',
          'echo pwned >> "$CLI" 2>/dev/null',
          'echo "home-sees=$(ls -A "$HOME_DIR" 2>/dev/null | tr "\\n" " ")"',
          "true",
        ].join("\n"),
      },
    ]);
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(readFileSync(join(up.work, "deploy.sh"), "utf8")).toBe("echo operator's own\n");
    expect(existsSync(join(up.work, ".git", "config"))).toBe(false);
    // Of the home only the paths to the run's own folders show (a test's home lies under /tmp,
    // where the run's /tmp is): none of what the home holds.
    const seen = line(output, "home-sees")!.trim().split(" ").filter(Boolean);
    expect(seen.filter((name) => name !== "runners" && name !== "workspaces")).toEqual([]);
    expect(readdirSync(up.home).length).toBeGreaterThan(1);
    expect(statSync(cli).mtimeMs).toBe(before);
  });
});

describe("a runner whose home its operator made a link to another folder before it started", () => {
  it("runs a run in its folder there, its steps in the one sandbox they share, as with a home that is no link", async () => {
    const target = tempDir("runyard-linked-home-");
    const home = join(tempDir("runyard-home-link-"), "home");
    symlinkSync(target, home);
    const linked = await startSandboxedUp({}, home);
    try {
      const runId = await submitWorkflow(
        linked.url,
        memberWorkflow(
          [
            {
              name: "first",
              script: [
                'echo "folder=$(pwd)"',
                'echo "ns=$(readlink /proc/self/ns/pid)"',
                "echo made-by-first > note.txt",
                'echo "out=yes" >> "$RUNYARD_OUTPUT"',
              ].join("\n"),
            },
            {
              name: "second",
              script: ['echo "ns2=$(readlink /proc/self/ns/pid)"', "cat note.txt"].join("\n"),
            },
          ],
          "linked-home",
        ),
        linked.userToken,
      );
      const view = await waitForRun(linked.url, runId, ended);
      const output = await runOutput(linked.url, runId);
      expect(view.status, JSON.stringify(view.error) + output).toBe("success");
      const folder = line(output, "folder")!;
      expect(folder.startsWith(`${realpathSync(target)}/workspaces/`), folder).toBe(true);
      expect(folder).toMatch(new RegExp(`/runs/${runId}$`));
      // The second step entered the sandbox the first made: its folders are the ones it shows.
      expect(line(output, "ns")).toMatch(/^pid:\[\d+\]$/);
      expect(line(output, "ns2")).toBe(line(output, "ns"));
      expect(output).toContain("made-by-first\n");
    } finally {
      await linked.proc.kill();
    }
  });
});
