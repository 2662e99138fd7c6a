import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processesWith, tempDir } from "./helpers/cli.js";
import {
  type MemberStep,
  memberWorkflow,
  outputLine,
  runEnded,
  runFolderOf,
  runOutput,
  submitWorkflow,
} from "./helpers/member-runs.js";
import { killSandboxHolder, until } from "./helpers/processes.js";
import { markWhenStepEnds } from "./helpers/run-event.js";
import { waitForOutput } from "./helpers/run-output-wait.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { api, readEvents, stepDir, waitForRun } from "./helpers/server.js";
import { doneScript, gateScript, swapUntilDone } from "./helpers/swap-race.js";

/**
 * A hostile member against a sandboxing `runyard up` whose runs each get one sandbox, entered by
 * every command of the run (native/fork-server.c 'E'): what a step can do from inside it to the
 * runner, to the commands entering beside it, and to other runs.
 */
let up: SandboxedUp;
/** A key of the operator's in the runner's environment: no step may ever read it. */
const operatorKey = "sk-operator-canary-5b1f0e";

beforeAll(async () => {
  up = await startSandboxedUp({ OPENAI_API_KEY: operatorKey });
});

afterAll(async () => {
  await up?.proc.kill();
});

const workflow = (steps: MemberStep[]) => memberWorkflow(steps, "attack");
const submit = (yaml: string, token = up.userToken) => submitWorkflow(up.url, yaml, token);
const ended = runEnded;
const outputOf = (runId: string) => runOutput(up.url, runId);
const line = outputLine;

describe("a step against the commands entering its run's sandbox", () => {
  it("holds no descriptor of the runner's: only its stdin, stdout and stderr", async () => {
    // The runner's own process may have been started holding more (a supervisor's socket, a
    // test harness's pipe): none of them reach a step, nor the sandbox's own processes.
    const runId = await submit(
      workflow([
        {
          name: "fds",
          script: [
            'echo "own=$(ls /proc/self/fd | tr "\\n" " ")"',
            'echo "holder=$(ls /proc/1/fd | tr "\\n" " ")"',
          ].join("\n"),
        },
      ]),
    );
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    // The shell's 255 is its own copy of the script's input; ls's 3 is its listing of the folder.
    expect(
      line(output, "own")
        ?.trim()
        .split(" ")
        .filter((fd) => fd !== "255"),
    ).toEqual(["0", "1", "2", "3"]);
    expect(line(output, "holder")?.trim().split(" ")).toEqual(["0", "1", "2"]);
  });

  it("cannot stop a command the fork-server is starting there and read the fork-server's environment or descriptors", async () => {
    // The spy predicts the pid the next command entering the sandbox gets (pids of a namespace are
    // handed out in order) and stops it the moment it appears: before its exec, it is a copy of
    // the fork-server (the runner's environment, its event pipe, other runs' output pipes).
    // In perl, not the shell: a loop of builtins is too slow to land between a fork and its exec
    // on a busy machine, and the shell's own children (tr, grep) took the pids it predicted.
    const spy = [
      "perl -e '",
      "use strict;",
      'sub slurp { my ($path) = @_; open(my $f, "<", $path) or return ""; local $/; my $text = <$f>; return $text // ""; }',
      'sub nextPid { return slurp("/proc/sys/kernel/ns_last_pid") + 1; }',
      'my ($found, $tries, $before) = ("no", 0, 0);',
      "my $next = nextPid();",
      'open(my $ready, ">", "spy-ready"); close($ready);',
      // Bounded: a command it stops before its exec is ended by the fork-server, the trigger's too.
      'until ($found eq "yes" || -e "trigger-done" || time() - $^T > 30) {',
      // A pid handed out and gone before it was stopped is missed: the next one is watched.
      '  unless (kill("STOP", $next)) { my $last = nextPid() - 1; $next = $last + 1 if $last >= $next; next; }',
      "  $tries++;",
      '  if (slurp("/proc/$next/environ") =~ /(?:^|\\0)(OPENAI_API_KEY=[^\\0]*)/) {',
      // Reversed: the runner masks its own secrets in output, not a step's own rendering of them.
      '    print "stolen=" . scalar(reverse($1)) . "\\n";',
      '    print "exe=" . (readlink("/proc/$next/exe") // "") . "\\n";',
      '    opendir(my $fds, "/proc/$next/fd"); my @pipes = grep { (readlink("/proc/$next/fd/$_") // "") =~ /^pipe:/ } readdir($fds);',
      '    print "pipes=" . scalar(@pipes) . "\\n";',
      '    $found = "yes";',
      "  }",
      // Its name says whether it was stopped before its exec (still the fork-server's copy).
      '  $before++ if slurp("/proc/$next/stat") =~ /\\(fork-server\\)/;',
      '  kill("CONT", $next);',
      "  $next = nextPid();",
      "}",
      'print "found=$found tries=$tries before-exec=$before\\n";',
      "'",
    ].join("\n");
    // The window is short: on a loaded machine a run may pass without the spy stopping a command
    // before its exec, which proves nothing; such a run is tried again, at most five times. The
    // fork-server may also end the command the spy stopped before the spy reads its name: the
    // trigger then fails saying so, which proves the stop as well, and is told to the spy here
    // (it would otherwise watch for its 30 s).
    let output = "";
    let stoppedBeforeExec = false;
    for (let attempt = 0; attempt < 5 && !stoppedBeforeExec; attempt++) {
      const runId = await submit(
        workflow([
          { name: "spy", depends: [], script: spy },
          { name: "waiter", depends: [], script: "while [ ! -e spy-ready ]; do :; done" },
          {
            name: "trigger",
            depends: ["waiter"],
            cmd: [...Array.from({ length: 300 }, () => "true"), "touch trigger-done"].join("\n"),
          },
        ]),
      );
      const dir = await runFolderOf(up.home, runId);
      markWhenStepEnds(up.url, runId, "trigger", join(dir, "trigger-done"), 120_000);
      const view = await waitForRun(up.url, runId, ended, 120_000);
      output = await outputOf(runId);
      const events = JSON.stringify(await readEvents(up.url, runId));
      // A command stopped before its exec is killed and fails (it would hold the fork-server): the
      // trigger may fail so, the spy never.
      const killedStopped = /stopped it before it started/.test(events);
      expect(view.status === "success" || killedStopped, output).toBe(true);
      expect(view.steps.find((step: { name: string }) => step.name === "spy")?.status).toBe("success");
      expect(output).not.toContain(operatorKey);
      expect(output).not.toContain([...operatorKey].reverse().join(""));
      stoppedBeforeExec = Number(/before-exec=(\d+)/.exec(output)?.[1] ?? 0) > 0 || killedStopped;
    }
    // The attack was real: the spy stopped a command as it entered, before its exec.
    expect(stoppedBeforeExec, output).toBe(true);
    expect(output).not.toContain(operatorKey);
    expect(output).not.toContain([...operatorKey].reverse().join(""));
    expect(output).toContain("found=no");
  }, 400_000);
});

describe("a step against the sandbox its run gets next", () => {
  it("cannot have bubblewrap make folders on the host through a link it left in the run's /tmp or $HOME", async () => {
    // The run's folders are shown at their host paths; where the runner's home lies under /tmp
    // (here) or under $HOME (~/.runyard, by default), the sandbox's maker makes their mount points
    // inside the run's own /tmp or home folder, which outlive the sandbox. A step swaps the top one
    // for a link to the host's path; its sandbox's holder ends (killed from outside: no step can
    // signal it), the next command's sandbox is made again, and a maker that followed the link
    // while the host was in view would make the folders on the host (bwrap did, through /oldroot).
    const target = join(up.home, "target-of-the-link");
    mkdirSync(target);
    const runId = await submit(
      workflow([
        {
          name: "plant",
          continueOnError: true,
          env: { TARGET: target },
          script: [
            "set +e",
            'top="/tmp/$(pwd | cut -d/ -f3)"',
            'echo "top=$top"',
            'mv "$top" /tmp/moved-away && echo moved',
            'ln -s "$TARGET" "$top" && echo linked',
            'echo "ns=$(readlink /proc/self/ns/pid)"',
            "echo planted",
            "sleep 600",
          ].join("\n"),
        },
        { name: "next", script: "echo next-ran" },
      ]),
    );
    const planted = await waitForOutput(up.url, runId, "planted\n", 60_000, up.userToken);
    killSandboxHolder(line(planted, "ns")!);
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    // The holder was killed, so the next step's sandbox was made again; the folders on the way to
    // the run's own are a tmpfs of that sandbox's, which cannot be moved away (a mount).
    expect(output, JSON.stringify(view)).toContain("linked\n");
    expect(output).not.toContain("moved\n");
    expect(readdirSync(target)).toEqual([]);
    // And the run goes on in its own folder.
    expect(output).toContain("next-ran\n");
    expect(view.status).toBe("success");
  });
});

/**
 * A run racing a swap: its `swapper` step, in `parent`, exchanges the folder `parent/<name>` with
 * a link to `victim` until the `done` step (after every racer) says they are over, and `racers`
 * start (each may fail) once it has begun.
 */
function swapRace(
  parent: string,
  name: string,
  victim: string,
  racers: Array<Omit<MemberStep, "depends">>,
): string {
  return workflow([
    {
      name: "swapper",
      depends: [],
      cwd: parent,
      env: { VICTIM: victim },
      script: [`ln -s "$VICTIM" ${name}.lnk`, swapUntilDone(name, `${name}.lnk`)].join("\n"),
    },
    { name: "gate", depends: [], cwd: parent, script: gateScript },
    ...racers.map((racer) => ({ ...racer, depends: ["gate"], continueOnError: true })),
    { name: "done", depends: racers.map((racer) => racer.name), cwd: parent, script: doneScript },
  ]);
}

describe("a step against the runner's writes and removals", () => {
  it("cannot have the runner remove host files by swapping the folder it made of $RUNYARD_OUTPUT for a link as it is removed", async () => {
    // The host files a step cannot see (here in the server's home), named as the bait's are.
    const victim = join(up.home, "victim");
    mkdirSync(victim);
    const names = Array.from({ length: 200 }, (_, index) => `f${index}`);
    for (const name of names) writeFileSync(join(victim, name), "keep me\n");
    // The bait leaves a folder where its $RUNYARD_OUTPUT goes, which the runner removes after the
    // attempt; a step of the same run beside it exchanges that folder with a link to the victim
    // (renameat2 RENAME_EXCHANGE, atomic) as fast as it can while the runner removes it, until the
    // step after the bait (the runner has removed its folder by then) says it is over.
    const runId = await submit(
      workflow([
        {
          name: "bait",
          depends: [],
          continueOnError: true,
          script: [
            'mkdir "$RUNYARD_OUTPUT"',
            `for i in $(seq 0 ${names.length - 1}); do echo x > "$RUNYARD_OUTPUT/f$i"; done`,
            'echo "$RUNYARD_OUTPUT" > bait-path',
            gateScript,
            "sleep 0.2",
          ].join("\n"),
        },
        {
          name: "swapper",
          depends: [],
          env: { VICTIM: victim },
          script: [
            "while [ ! -e bait-path ]; do sleep 0.01; done",
            'out=$(cat bait-path); ln -s "$VICTIM" "$out.lnk"',
            swapUntilDone('"$out"', '"$out.lnk"'),
          ].join("\n"),
        },
        { name: "done", depends: ["bait"], script: doneScript },
      ]),
    );
    const view = await waitForRun(up.url, runId, ended, 60_000);
    const output = await outputOf(runId);
    // The attack was real: the swapper exchanged them many times while the bait's attempt ended.
    expect(Number(/swaps=(\d+)/.exec(output)?.[1] ?? 0), JSON.stringify(view)).toBeGreaterThan(1000);
    expect(readdirSync(victim).sort()).toEqual([...names].sort());
  });

  it("cannot have the runner write a step's output_path files through a link it planted there", async () => {
    // A file of the server's home, which no step sees, and a folder the step may work in.
    const victim = join(up.home, "victim.txt");
    writeFileSync(victim, "the operator's own\n");
    const folder = join(stepDir(), "logs");
    mkdirSync(folder);
    const runId = await submit(
      workflow([
        {
          name: "plant",
          cwd: folder,
          env: { VICTIM: victim },
          // The runner names the files <run>-<step>-<host>.stdout.log: the run's id is the step's.
          script: 'ln -s "$VICTIM" "$RUNYARD_RUN_ID-write-local.stdout.log" && echo planted',
        },
        { name: "write", outputPath: folder, script: "echo written-by-the-step" },
      ]),
    );
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(output, JSON.stringify(view)).toContain("planted\n");
    expect(readFileSync(victim, "utf8")).toBe("the operator's own\n");
    // The step is told why its full output was not kept.
    expect(JSON.stringify(await readEvents(up.url, runId))).toContain("ELOOP");
  });

  it("cannot have the runner write a step's output_path files into a hidden folder by swapping the folder for a link after it was checked", async () => {
    // A folder of the server's home, which no step sees, and a folder the steps may work in.
    const victim = join(up.home, "victim-output-path");
    mkdirSync(victim);
    const parent = join(stepDir(), `race-${Date.now()}`);
    const folder = join(parent, "logs");
    mkdirSync(folder, { recursive: true });
    // The runner checks output_path's folder, then opens its files there: a step of the same run
    // exchanges the folder with a link to the victim (renameat2 RENAME_EXCHANGE) meanwhile.
    const writers = Array.from({ length: 12 }, (_, index) => `w${index}`);
    const runId = await submit(
      swapRace(
        parent,
        "logs",
        victim,
        writers.map((name) => ({ name, outputPath: folder, script: "echo written-by-the-step" })),
      ),
    );
    const view = await waitForRun(up.url, runId, ended, 120_000);
    const output = await outputOf(runId);
    // The attack was real: the swapper exchanged them many times while the writers started.
    expect(Number(/swaps=(\d+)/.exec(output)?.[1] ?? 0), JSON.stringify(view)).toBeGreaterThan(1000);
    expect(readdirSync(victim)).toEqual([]);
  });
});

describe("a step against the folder its sandbox mounts", () => {
  it("cannot have a step's sandbox mount a hidden folder as its cwd by swapping the folder for a link as the sandbox is made", async () => {
    // A folder of the server's home, which no step sees, and a folder the steps may work in.
    const victim = join(up.home, "victim-cwd");
    mkdirSync(victim);
    writeFileSync(join(victim, "secret"), "server-secret\n");
    const parent = join(stepDir(), `cwd-race-${Date.now()}`);
    mkdirSync(join(parent, "x"), { recursive: true });
    // A step whose cwd lies outside the run's folder gets a sandbox of its own, which mounts its
    // cwd by path: a step of the same run exchanges that folder with a link to the victim
    // (renameat2 RENAME_EXCHANGE) as fast as it can while the readers' sandboxes are made.
    const readers = Array.from({ length: 12 }, (_, index) => `r${index}`);
    const runId = await submit(
      swapRace(
        parent,
        "x",
        victim,
        readers.map((name) => ({
          name,
          cwd: join(parent, "x"),
          script: `cat secret 2>/dev/null && echo LEAKED; touch pwned-${name}; true`,
        })),
      ),
    );
    const view = await waitForRun(up.url, runId, ended, 120_000);
    const output = await outputOf(runId);
    // The attack was real: the swapper exchanged them many times while the readers started.
    expect(Number(/swaps=(\d+)/.exec(output)?.[1] ?? 0), JSON.stringify(view)).toBeGreaterThan(1000);
    expect(output).not.toContain("LEAKED");
    expect(output).not.toContain("server-secret");
    expect(readdirSync(victim)).toEqual(["secret"]);
  });
});

describe("a step against the sandbox itself (these held)", () => {
  it("has no capability and no way to gain one: none bounded, no_new_privs, setuid ignored, mounts refused", async () => {
    const runId = await submit(
      workflow([
        {
          name: "caps",
          script: [
            "set +e",
            "echo \"eff=$(awk '/^CapEff/ { print $2 }' /proc/self/status)\"",
            "echo \"bnd=$(awk '/^CapBnd/ { print $2 }' /proc/self/status)\"",
            "echo \"nnp=$(awk '/^NoNewPrivs/ { print $2 }' /proc/self/status)\"",
            "mkdir -p m && mount -t tmpfs none m 2>/dev/null && echo LEAK-mount || echo no-mount",
            // A setuid binary runs with the step's own uid (no_new_privs).
            'su_path=$(command -v su); [ -n "$su_path" ] && [ -u "$su_path" ] && echo "setuid-uid=$("$su_path" -c id 2>&1 </dev/null | head -1)"',
            // The host's pid 1 and the runner are not in its pid namespace.
            'echo "pid1=$(tr "\\0" " " < /proc/1/cmdline | cut -c1-5)"',
            'echo "fork-servers=$(for p in /proc/[0-9]*; do readlink "$p/exe"; done | grep -c "/fork-server$")"',
            "true",
          ].join("\n"),
        },
      ]),
    );
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(line(output, "eff")).toBe("0000000000000000");
    expect(line(output, "bnd")).toBe("0000000000000000");
    expect(line(output, "nnp")).toBe("1");
    expect(output).toContain("no-mount\n");
    expect(output).not.toContain("uid=0(root)");
    // Its own pid 1: the sandbox's holder.
    expect(line(output, "pid1")).toBe("runya");
    expect(line(output, "fork-servers")).toBe("0");
  });

  // A root runner's sandboxed uid (65534) is the host's root outside: the sysctl files check
  // that uid alone, not a capability. Each is written with the value it holds, so a write that got
  // through changes nothing; core_pattern set to a program of the run's would have the host run
  // it as root at the next crash, and kernel.hostname is the host's own (the UTS namespace is shared).
  it("cannot write the host's kernel settings through /proc/sys, and still reads them", async () => {
    const runId = await submit(
      workflow([
        {
          name: "sysctl",
          script: [
            "set +e",
            "for f in kernel/core_pattern kernel/hostname kernel/modprobe vm/overcommit_memory; do",
            '  v=$(cat "/proc/sys/$f")',
            '  if (printf "%s\n" "$v" > "/proc/sys/$f") 2>/dev/null; then echo "LEAK-$f"; else echo "held-$f"; fi',
            "done",
            'echo "ostype=$(cat /proc/sys/kernel/ostype)"',
            "true",
          ].join("\n"),
        },
      ]),
    );
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(output).not.toContain("LEAK-");
    for (const setting of [
      "kernel/core_pattern",
      "kernel/hostname",
      "kernel/modprobe",
      "vm/overcommit_memory",
    ])
      expect(output).toContain(`held-${setting}\n`);
    expect(line(output, "ostype")).toBe("Linux");
  });

  // In a user namespace of its own a step would hold every capability there (CAP_NET_ADMIN over a
  // network namespace of its own, CAP_SYS_ADMIN over its own mounts): the kernel code only those
  // reach (nf_tables, mount and namespace code) is where most container escapes of recent years
  // were found. bwrap --disable-userns refuses it; the fork-server joins the holder's user
  // namespace through its parent, which owns the sandbox's mounts.
  it("cannot make a user namespace of its own inside the sandbox", async () => {
    const runId = await submit(
      workflow([{ name: "nest", script: "unshare -U -r -n sh -c 'id -u' 2>&1 || echo refused" }]),
    );
    await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(output).toContain("refused");
    expect(output).not.toMatch(/^0$/m);
  });

  it("sees no other sandbox (the pool's, made ahead for the next runs, nor another run's) and names no other run's folder as its cwd", async () => {
    const first = await submit(workflow([{ name: "a", script: 'echo "folder=$(pwd)"' }]));
    await waitForRun(up.url, first, ended);
    const folderA = line(await outputOf(first), "folder")!;
    const runId = await submit(
      workflow([
        {
          name: "look",
          script: [
            // The holder, this shell and what it runs: nothing of the pool's sandboxes.
            'echo "holders=$(for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done 2>/dev/null | grep -cx "runyard-sandbox-holder ")"',
            'echo "pool-mounts=$(grep -c "/.pool-" /proc/self/mountinfo)"',
          ].join("\n"),
        },
      ]),
    );
    const view = await waitForRun(up.url, runId, ended);
    const output = await outputOf(runId);
    expect(view.status, output).toBe("success");
    expect(line(output, "holders"), output).toBe("1");
    expect(line(output, "pool-mounts")).toBe("0");
    // Another run's folder as a cwd: refused at submit, nothing stored.
    const { status, body } = await api<{ error?: { code: string } }>(
      up.url,
      "POST",
      "/api/runs",
      {
        kind: "workflow",
        workflow: workflow([{ name: "other", cwd: folderA, script: "echo LEAK" }]),
        vars: {},
      },
      up.userToken,
    );
    expect(status).toBe(400);
    expect(body.error?.code).toBe("STEP_CWD_NOT_ALLOWED");
  });

  it("leaves nothing running once its run has ended, not even a process that left its group", async () => {
    const marker = `1000.${Date.now() % 100000}`;
    // The step ends once the process it leaves has become `sleep` (on a busy machine it was still
    // forking when the shell ended), so it is running when the run ends. The test no longer looks
    // for it from outside first: on a loaded machine the sandbox could go (with the run's end)
    // before the test saw the run end, and the process was gone before it was looked for.
    const runId = await submit(
      workflow([
        {
          name: "daemon",
          script: `setsid sleep ${marker} </dev/null >/dev/null 2>&1 &\nleft=$!\nuntil [ "$(cat /proc/$left/comm 2>/dev/null)" = sleep ]; do sleep 0.01; done\necho "started $left"`,
        },
      ]),
    );
    const view = await waitForRun(up.url, runId, ended);
    expect(view.status).toBe("success");
    expect(await outputOf(runId)).toMatch(/started \d+/);
    // Ended with the run (the server's `run_ended`).
    await until(
      "the run's sandbox and what it held are gone",
      () => processesWith(`sleep\0${marker}`).length === 0,
      15_000,
    );
  });
});

describe("a step against the runner's own folders", () => {
  // A member's step that named the runner's working folder (where `runyard up` was started: often
  // the runyard checkout itself) as its cwd got it read-write; the working folder is no longer
  // among a sandboxing runner's cwd roots (a step that names no cwd has the run's own folder).
  it("cannot write the runner's working folder by naming it as its cwd", async () => {
    writeFileSync(join(up.work, "deploy.sh"), "echo operator's own\n");
    const { status, body } = await api<{ error?: { code: string } }>(
      up.url,
      "POST",
      "/api/runs",
      {
        kind: "workflow",
        workflow: workflow([{ name: "attack", cwd: up.work, script: "echo pwned > deploy.sh" }]),
        vars: {},
      },
      up.userToken,
    );
    expect(status).toBe(400);
    expect(body.error?.code).toBe("STEP_CWD_NOT_ALLOWED");
    expect(readFileSync(join(up.work, "deploy.sh"), "utf8")).toBe("echo operator's own\n");
  });
});

describe("a step against the sandbox its run gets next, where the runner's folders lie under $HOME", () => {
  let upHome: SandboxedUp;
  let home: string;

  beforeAll(async () => {
    // As by default (~/.runyard): the runs' folders lie under the runner user's $HOME, where each
    // run's own home folder is shown.
    home = tempDir();
    upHome = await startSandboxedUp({ HOME: home, RUNYARD_WORKSPACE_DIR: join(home, "ws") });
  });

  afterAll(async () => {
    await upHome?.proc.kill();
  });

  it("cannot have bubblewrap make folders on the host through a link it left in its $HOME", async () => {
    const target = join(upHome.home, "target-of-the-link");
    mkdirSync(target);
    const { status, body } = await api<{ run_id: string }>(
      upHome.url,
      "POST",
      "/api/runs",
      {
        kind: "workflow",
        vars: {},
        workflow: workflow([
          {
            name: "plant",
            continueOnError: true,
            env: { TARGET: target },
            script: [
              "set +e",
              'echo "home=$HOME pwd=$(pwd)"',
              'mv "$HOME/ws" "$HOME/moved-away" && echo moved',
              'ln -s "$TARGET" "$HOME/ws" && echo linked',
              'echo "ns=$(readlink /proc/self/ns/pid)"',
              "echo planted",
              "sleep 600",
            ].join("\n"),
          },
          { name: "next", script: "echo next-ran" },
        ]),
      },
      upHome.userToken,
    );
    expect(status).toBe(201);
    const planted = await waitForOutput(upHome.url, body.run_id, "planted\n", 60_000, upHome.userToken);
    killSandboxHolder(line(planted, "ns")!);
    const view = await waitForRun(upHome.url, body.run_id, ended);
    const events = await readEvents(upHome.url, body.run_id);
    const output = events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
    expect(output, JSON.stringify(view)).toContain(`home=${home} pwd=${home}/ws/`);
    expect(output).toContain("linked\n");
    expect(output).not.toContain("moved\n");
    expect(readdirSync(target)).toEqual([]);
    expect(output).toContain("next-ran\n");
  });
});
