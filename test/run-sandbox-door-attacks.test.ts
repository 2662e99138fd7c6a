import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { findPidsHierarchy } from "../src/exec/sandbox/run-cgroup.js";
import { RunSandbox, SANDBOX_NAMESPACES } from "../src/exec/sandbox/run-sandbox.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import type { ExecRequest } from "../src/exec/types.js";
import {
  type MemberStep,
  memberWorkflow,
  outputLine,
  runEnded,
  runFolderOf,
  runOutput,
  submitWorkflow,
} from "./helpers/member-runs.js";
import { fileAppears } from "./helpers/processes.js";
import { markWhenStepEnds } from "./helpers/run-event.js";
import { runInSandbox } from "./helpers/run-sandbox-command.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { readEvents, stepDir, waitForRun } from "./helpers/server.js";

/**
 * A hostile member against the door of its run's sandbox (native/sandbox-entry.c): the process,
 * already inside the sandbox, that the fork-server forks each command of the run from. What a
 * step can find of it, what it can do to it and to the commands it forks, and what a step that
 * kills its sandbox's holder or fills its process limit does to the run's next command, to other
 * runs and to the runner.
 */
let up: SandboxedUp;
/** A key of the operator's in the runner's environment: no step may ever read it. */
const operatorKey = "sk-operator-canary-d00r5";

beforeAll(async () => {
  // A small process limit a run: a step fills it in a moment, without filling a shared machine's.
  // Room for four steps: another run's step is given to the runner while an attack holds two.
  up = await startSandboxedUp({
    OPENAI_API_KEY: operatorKey,
    RUNYARD_RUN_PIDS_MAX: "64",
    RUNYARD_CAPACITY: "4",
  });
});

afterAll(async () => {
  await up?.proc.kill();
});

const workflow = (steps: MemberStep[]) => memberWorkflow(steps, "door-attack");
const submit = (yaml: string) => submitWorkflow(up.url, yaml, up.userToken);
const outputOf = (runId: string) => runOutput(up.url, runId);
const line = outputLine;

describe("a step against the runner, through a command of its run the door forked", () => {
  it("cannot hold the fork-server (every run's commands) by stopping its run's next command before its exec", async () => {
    // A command the door forks is born in the run's pid namespace with the run's uid: a step may
    // signal it before its exec. The fork-server waited for that exec (its report pipe) and so,
    // with the command stopped there, started no command of any run until it was continued. The
    // spy predicts the next pid of the sandbox, stops it, and keeps it stopped if it was a command
    // the door had just forked (its name is still the fork-server's); then another run is made.
    const spy = [
      "perl -e '",
      "use strict;",
      'sub slurp { my ($path) = @_; open(my $f, "<", $path) or return ""; local $/; my $text = <$f>; return $text // ""; }',
      'sub nextPid { return slurp("/proc/sys/kernel/ns_last_pid") + 1; }',
      "my $next = nextPid(); my $held = 0;",
      'open(my $ready, ">", "spy-ready"); close($ready);',
      'until ($held || -e "trigger-done") {',
      '  if (kill("STOP", $next)) {',
      '    if (slurp("/proc/$next/stat") =~ /\\(fork-server\\)/) {',
      // What of the fork-server it is a copy of can be read while it is held: nothing.
      '      my $environ = slurp("/proc/$next/environ");',
      '      print "stolen=" . scalar(reverse($1)) . "\\n" if $environ =~ /(OPENAI_API_KEY=[^\\0]*)/;',
      // Its descriptors (the door's, until it closes them: the fork-server's stdin and stdout among
      // them) may be counted, as root owns its /proc files and the step's uid is root's on the host
      // where the runner is root; none may be read or opened.
      '      if (opendir(my $fds, "/proc/$next/fd")) { for my $fd (grep { !/^\\./ } readdir($fds)) {',
      '        my $to = readlink("/proc/$next/fd/$fd"); print "fdlink=$to\\n" if defined $to;',
      '        print "fdopen=$fd\\n" if open(my $w, ">>", "/proc/$next/fd/$fd");',
      "      } }",
      '      print "environ-bytes=" . length($environ) . "\\n";',
      '      $held = 1; open(my $h, ">", "held"); close($h);',
      "      last;",
      "    }",
      '    kill("CONT", $next);',
      "  }",
      "  $next = nextPid();",
      "}",
      'print "held=$held\\n";',
      // Kept stopped until the test has seen another run through (or two minutes).
      'my $end = time + 120; until (!$held || -e "release" || time > $end) { select(undef, undef, undef, 0.05); }',
      'kill("CONT", $next);',
      "'",
    ].join("\n");
    let held = false;
    for (let attempt = 0; attempt < 5 && !held; attempt++) {
      // In the run's own folder: a step given another cwd gets a sandbox of its own.
      const runId = await submit(
        workflow([
          { name: "spy", depends: [], script: spy },
          {
            name: "waiter",
            depends: [],
            script: "for i in $(seq 6000); do [ -e spy-ready ] && exit 0; sleep 0.02; done; exit 1",
          },
          {
            name: "trigger",
            depends: ["waiter"],
            continueOnError: true,
            cmd: [...Array.from({ length: 300 }, () => "true"), "touch trigger-done"].join("\n"),
          },
        ]),
      );
      const dir = await runFolderOf(up.home, runId);
      // The spy holds a command, or the run ends without its having caught one before its exec
      // (a loaded machine may let a run pass so: it proves nothing, and is tried again). The
      // door may also kill the command the spy stopped before the spy has read its name: the
      // trigger then fails before it tells the spy it is done, and is told here instead.
      markWhenStepEnds(up.url, runId, "trigger", join(dir, "trigger-done"), 240_000);
      held = await Promise.race([
        fileAppears(join(dir, "held"), 240_000).then(
          () => true,
          () => false,
        ),
        waitForRun(up.url, runId, runEnded, 240_000).then(() => false),
      ]);
      try {
        if (!held) continue;
        // While a command of the run is held stopped, another run is made and entered (the runner
        // has room for it beside the spy and the trigger).
        const other = await submit(workflow([{ name: "other", script: "echo other-ran" }]));
        const view = await waitForRun(up.url, other, runEnded, 60_000);
        expect(view.status).toBe("success");
        expect(await outputOf(other)).toContain("other-ran\n");
      } finally {
        writeFileSync(join(dir, "release"), "");
      }
      await waitForRun(up.url, runId, runEnded, 120_000);
      const output = await outputOf(runId);
      expect(line(output, "held"), output).toBe("1");
      expect(output).not.toContain("stolen=");
      expect(output).not.toContain("fdlink=");
      expect(output).not.toContain("fdopen=");
      expect(line(output, "environ-bytes")).toBe("0");
      // The stopped command was not waited for: it failed, and says why and what to do.
      const events = JSON.stringify(await readEvents(up.url, runId));
      expect(events).toContain("a process of its run stopped it before it started");
      expect(events).toContain("send SIGCONT to them");
    }
    expect(held, "the spy never stopped a command before its exec").toBe(true);
  }, 900_000);
});

describe("a step looking for its sandbox's door", () => {
  it("finds nothing of it: no process outside its namespaces, no fork-server, no cgroup file, no descriptor", async () => {
    const runId = await submit(
      workflow([
        {
          name: "look",
          script: [
            "set +e",
            "mine=$(readlink /proc/self/ns/pid)",
            // Every process it sees: the holder (pid 1), this shell and what it runs.
            'for p in /proc/[0-9]*; do n=$(readlink $p/ns/pid); [ -n "$n" ] && [ "$n" != "$mine" ] && echo "foreign=$p"; done',
            'echo "comms=$(cat /proc/[0-9]*/comm 2>/dev/null | sort -u | tr "\\n" " ")"',
            'echo "fork-servers=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c fork-server)"',
            'echo "cgroup-files=$(ls /sys/fs/cgroup 2>/dev/null | wc -l)"',
            // Its own descriptors, those of the holder (pid 1) and pid 2: none of the helper's.
            'echo "own=$(ls /proc/self/fd | tr "\\n" " ")"',
            "echo \"links=$(for p in 1 2 self; do for f in /proc/$p/fd/*; do readlink $f; done; done 2>/dev/null | grep -vE '^(/dev/null|pipe:.*|anon_inode:.*|/proc/.*)$' | tr '\\n' ' ')\"",
            'echo "sockets=$(for p in 1 2 self; do for f in /proc/$p/fd/*; do readlink $f; done; done 2>/dev/null | grep -c socket)"',
            // The runner's environment in any process it can read.
            "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c OPENAI_API_KEY | sed 's/^/keys=/'",
          ].join("\n"),
        },
      ]),
    );
    const view = await waitForRun(up.url, runId, runEnded);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(output).not.toContain("foreign=");
    expect(line(output, "fork-servers"), output).toBe("0");
    expect(line(output, "cgroup-files")).toBe("0");
    expect(line(output, "links")?.trim(), output).toBe("");
    expect(line(output, "sockets")).toBe("0");
    expect(line(output, "keys")).toBe("0");
    expect(output).not.toContain(operatorKey);
  });
});

describe("a step against its sandbox's holder, pid 1", () => {
  it("cannot write, replace or end the program pid 1 runs, which shows no host path", async () => {
    const built = nativeHelperPath("sandbox-holder");
    const digest = () => createHash("sha256").update(readFileSync(built)).digest("hex");
    const before = digest();
    const runId = await submit(
      workflow([
        {
          name: "holder",
          script: [
            "set +e",
            'echo "pid1=$(cat /proc/1/comm) cmdline=$(tr "\\0" " " < /proc/1/cmdline)"',
            "printf x >> /proc/1/exe 2>/dev/null && echo LEAK-exe || echo no-exe",
            "cp /bin/true /proc/1/exe 2>/dev/null && echo LEAK-copy || echo no-copy",
            'echo "exe=$(readlink /proc/1/exe)"',
            // The program is no file of the sandbox's, by the name it was built as or any other.
            "find / -xdev -name sandbox-holder 2>/dev/null | grep -q . && echo LEAK-file || echo no-file",
            "kill -TERM 1; kill -KILL 1; kill -STOP 1",
            'echo "after-kill=$(cat /proc/1/comm) state=$(sed -n "s/^State:\\t//p" /proc/1/status)"',
          ].join("\n"),
        },
        // The run's next step: the same sandbox, held by the same program.
        { name: "next", script: 'echo "next-pid1=$(cat /proc/1/comm) ns=$(readlink /proc/self/ns/pid)"' },
      ]),
    );
    const view = await waitForRun(up.url, runId, runEnded);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(output).not.toContain("LEAK");
    for (const refused of ["exe", "copy", "file"]) expect(output).toContain(`no-${refused}\n`);
    expect(line(output, "pid1")).toBe("sandbox-holder cmdline=runyard-sandbox-holder ");
    // Its own read-only mount of the program's file: no path of the host's.
    expect(line(output, "exe")).not.toContain(dirname(built));
    expect(line(output, "after-kill")).toMatch(/^sandbox-holder state=S/);
    expect(line(output, "next-pid1")).toMatch(/^sandbox-holder ns=pid:\[\d+\]$/);
    expect(digest()).toBe(before);
  });
});

describe("a step that ends its sandbox or fills its process limit", () => {
  it("leaves another run's running step alone, cannot end its own sandbox, and the run's next step starts there, in its cgroup", async () => {
    const dir = stepDir();
    // The victim, another run's step, runs until the attack is over.
    const victim = await submit(
      workflow([
        {
          name: "victim",
          cwd: dir,
          script: [
            'echo "victim-ns=$(readlink /proc/self/ns/pid)"',
            "touch victim-ready",
            "while [ ! -e attack-over ]; do sleep 0.05; done",
            'echo "victim-alive ns=$(readlink /proc/self/ns/pid)"',
          ].join("\n"),
        },
      ]),
    );
    await fileAppears(join(dir, "victim-ready"), 120_000);
    // In the run's own sandbox (no cwd of its own): fills its process limit, then kills all it can
    // signal there, which is not the sandbox's holder: its pid 1, which no signal from inside reaches.
    const runId = await submit(
      workflow([
        {
          name: "bomb",
          continueOnError: true,
          script: [
            "set +e",
            'echo "bomb-ns=$(readlink /proc/self/ns/pid)"',
            'echo "bomb-cgroup=$(grep -E ":pids:|^0::" /proc/self/cgroup | head -1 | sed "s/^[^:]*:[^:]*://")"',
            // Forks until the run's limit (64 here) refuses, and lets them go.
            'perl -e \'my @kids; while (@kids < 1000) { my $pid = fork(); last unless defined $pid; if ($pid == 0) { sleep 1000; exit 0 } push @kids, $pid } print "forked=" . scalar(@kids) . "\\n"; kill("KILL", @kids); waitpid($_, 0) for @kids\'',
            "kill -KILL -1",
            'echo "bomb-pid1=$(cat /proc/1/comm)"',
          ].join("\n"),
        },
        {
          name: "next",
          script: [
            'echo "next-ns=$(readlink /proc/self/ns/pid)"',
            'echo "next-pid1=$(cat /proc/1/comm)"',
            'echo "next-cgroup=$(grep -E ":pids:|^0::" /proc/self/cgroup | head -1 | sed "s/^[^:]*:[^:]*://")"',
            "echo next-ran",
          ].join("\n"),
        },
      ]),
    );
    let view: Awaited<ReturnType<typeof waitForRun>>;
    try {
      view = await waitForRun(up.url, runId, runEnded, 120_000);
    } finally {
      writeFileSync(join(dir, "attack-over"), "");
    }
    const victimView = await waitForRun(up.url, victim, runEnded, 120_000);
    const output = await outputOf(runId);
    const victimOutput = await outputOf(victim);
    // The bomb was held to the run's limit.
    const forked = Number(line(output, "forked"));
    expect(forked, output).toBeGreaterThan(0);
    expect(forked).toBeLessThan(64);
    expect(line(output, "bomb-cgroup")).toMatch(/\/runyard\/runner-[0-9a-f]{16}\/sandbox-[0-9a-f]{16}$/);
    // The other run's step went on, in its own sandbox.
    expect(victimView.status, victimOutput).toBe("success");
    expect(victimOutput).toContain(`victim-alive ns=${line(victimOutput, "victim-ns")}`);
    expect(line(victimOutput, "victim-ns")).not.toBe(line(output, "bomb-ns"));
    // The holder outlived the attack, and the run's next step ran in the same sandbox and cgroup.
    expect(line(output, "bomb-pid1"), output).toBe("sandbox-holder");
    expect(output, JSON.stringify(view)).toContain("next-ran\n");
    expect(line(output, "next-pid1")).toBe("sandbox-holder");
    expect(line(output, "next-ns")).toBe(line(output, "bomb-ns"));
    expect(line(output, "next-cgroup")).toBe(line(output, "bomb-cgroup"));
  }, 300_000);
});

/**
 * The same attacks on RunSandbox and the fork-server directly: what no `up` lets a step time
 * exactly (its run's limit full while the runner starts its next command; requests naming a
 * holder that is not theirs, as a reused pid would).
 */
describe("a run's sandbox's door, entered directly", () => {
  const root = mkdtempSync(join(tmpdir(), "runyard-door-attacks-"));
  const env = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/home/runner" };
  let launcher: ForkServerLauncher;
  let sandbox: Sandbox;
  const made: RunSandbox[] = [];
  const folders = new Map<RunSandbox, string>();

  beforeAll(async () => {
    const probe = await probeSandbox();
    if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);
    const hierarchy = findPidsHierarchy();
    if ("problem" in hierarchy) throw new Error(hierarchy.problem);
    sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [], pids: { hierarchy, max: 16 } });
    launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
      killGraceMs: 100,
    });
  });

  afterAll(async () => {
    await Promise.all(made.map((box) => box.close()));
    await launcher?.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function makeRun(name: string): Promise<RunSandbox> {
    const base = join(root, name);
    const layout = {
      folder: join(base, "folder"),
      tmp: join(base, "tmp"),
      scratch: [join(base, "scratch")],
      home: env.HOME,
    };
    for (const path of [layout.folder, layout.tmp, ...layout.scratch]) mkdirSync(path, { recursive: true });
    const box = await RunSandbox.make(launcher, sandbox, layout);
    if (!(box instanceof RunSandbox)) throw new Error(box.problem);
    made.push(box);
    folders.set(box, layout.folder);
    return box;
  }

  const run = (box: RunSandbox, script: string, options: Partial<ExecRequest> = {}) =>
    runInSandbox(launcher, box, folders.get(box)!, script, { env, killGraceMs: 100, ...options });

  it("survives its run's limit filled: the command it cannot fork fails, the next one starts in the same sandbox", async () => {
    const box = await makeRun("full");
    const folder = folders.get(box)!;
    const bomb = run(
      box,
      [
        "readlink /proc/self/ns/pid",
        'perl -e \'my $n = 0; while (defined(my $pid = fork())) { if ($pid == 0) { sleep 1 until -e "release"; exit 0 } $n++ } print "forked=$n\\n"; open(my $f, ">", "full"); close($f); sleep 1 until -e "release"; 1 while wait() > 0\'',
      ].join("\n"),
    );
    await fileAppears(join(folder, "full"), 60_000);
    const refused = await run(box, "echo LEAK-started");
    expect(refused.status).toBe("failed");
    expect(refused.stdout).not.toContain("LEAK");
    expect(refused.spawnError).toMatch(/EAGAIN|EWOULDBLOCK/);
    writeFileSync(join(folder, "release"), "");
    const first = await bomb;
    const after = await run(box, "readlink /proc/self/ns/pid");
    expect(after.status, after.stderr).toBe("success");
    expect(after.stdout).toBe(`${first.stdout.split("\n")[0]}\n`);
  });

  it("is never another sandbox's: requests naming another sandbox's holder with this one's namespaces are refused, and leave that sandbox working", async () => {
    const mine = await makeRun("mine");
    const theirs = await makeRun("theirs");
    const ns = (box: RunSandbox) => run(box, "readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt");
    const theirsBefore = await ns(theirs);
    // What a reused pid looks like: their holder's pid, with my sandbox's namespaces.
    const stale = { pid: theirs.holder.pid, namespaces: mine.holder.namespaces };
    const refused = await launcher.run({
      argv: ["/bin/sh", "-c", "echo LEAK-entered"],
      env,
      killGraceMs: 100,
      onOutput: () => {},
      cwd: folders.get(theirs)!,
      enter: stale,
    });
    expect(refused.status).toBe("failed");
    expect(refused.spawnError).toContain("ESRCH");
    expect(await launcher.sandboxDoor(stale, "open")).toBe("ESRCH");
    // A stale close ('D') of that pid, then their next command: still in their sandbox.
    expect(await launcher.sandboxDoor(stale, "done")).toBeUndefined();
    const theirsAfter = await ns(theirs);
    expect(theirsAfter.status).toBe("success");
    expect(theirsAfter.stdout).toBe(theirsBefore.stdout);
    const mineNow = await ns(mine);
    expect(mineNow.stdout).not.toBe(theirsAfter.stdout);
  });

  it("starts nothing of a closed sandbox's run outside it: a command racing its close fails or runs inside, and the cgroup goes", async () => {
    const hierarchy = findPidsHierarchy();
    if ("problem" in hierarchy) throw new Error(hierarchy.problem);
    for (let round = 0; round < 5; round++) {
      const box = await makeRun(`closing-${round}`);
      const group = readFileSync(`/proc/${box.holder.pid}/cgroup`, "utf8")
        .split("\n")
        .find((entry) => entry.includes(":pids:") || entry.startsWith("0::"))!
        .replace(/^[^:]*:[^:]*:/, "");
      const folder = join(hierarchy.folder, group.split("/").at(-1)!);
      // 'D' is written first, the command's 'E' right after it: the door may be opened again.
      const closing = box.close();
      const racer = run(box, "readlink /proc/self/ns/pid; cat /proc/1/comm");
      await closing;
      const result = await racer;
      const inside = `pid:[${box.holder.namespaces[SANDBOX_NAMESPACES.indexOf("pid")]}]`;
      if (result.status === "success") expect(result.stdout).toBe(`${inside}\nbwrap\n`);
      // Entered, then cut short as the sandbox ended under it: what it printed, it printed inside.
      else if (result.stdout !== "") expect(result.stdout.split("\n")[0]).toBe(inside);
      expect(existsSync(folder), `round ${round}: ${JSON.stringify(result)}`).toBe(false);
    }
  });
});
