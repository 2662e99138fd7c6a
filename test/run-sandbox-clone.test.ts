import { execFile } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { findPidsHierarchy, type PidsHierarchy } from "../src/exec/sandbox/run-cgroup.js";
import { RunSandbox } from "../src/exec/sandbox/run-sandbox.js";
import { probeSandbox, Sandbox, type SandboxOptions } from "../src/exec/sandbox/sandbox.js";
import { templateFor } from "../src/exec/sandbox/sandbox-template.js";
import { repoRoot } from "./helpers/cli.js";
import { alive, exeOf, parentOf, until } from "./helpers/processes.js";
import { runInSandbox } from "./helpers/run-sandbox-command.js";

const execFileAsync = promisify(execFile);

/**
 * A run's sandbox cloned from the runner's template (native/sandbox-clone.c) against one bwrap
 * makes for the same folders: what a step sees in each, and that no run sees another's.
 */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);

const root = mkdtempSync(join(tmpdir(), "runyard-clone-test-"));
const hiddenHome = join(root, "home");
mkdirSync(hiddenHome);
writeFileSync(join(hiddenHome, "secret.key"), "top secret\n");
const fallbacks: string[] = [];
const pids = findPidsHierarchy();
const options: SandboxOptions = {
  bwrap: probe.bwrap,
  hide: [hiddenHome],
  ...("problem" in pids ? {} : { pids: { hierarchy: pids as PidsHierarchy, max: 64 } }),
};
const bwrapMade = new Sandbox(options);
const cloned = new Sandbox({ ...options, clones: { onFallback: (reason) => fallbacks.push(reason) } });
const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
  killGraceMs: 1000,
});
const env = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/home/runner" };
const made: RunSandbox[] = [];
const folders = new Map<RunSandbox, string>();

afterAll(async () => {
  await Promise.all(made.map((box) => box.close()));
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

async function makeRun(name: string, sandbox: Sandbox): Promise<RunSandbox> {
  const base = join(root, name);
  const layout = {
    folder: join(base, "folder"),
    tmp: join(base, "tmp"),
    scratch: [join(hiddenHome, `${name}-scratch`)],
    home: env.HOME,
    homeFolder: join(base, "home"),
  };
  for (const path of [layout.folder, layout.tmp, layout.homeFolder, ...layout.scratch])
    mkdirSync(path, { recursive: true });
  const box = await RunSandbox.make(launcher, sandbox, layout);
  if (!(box instanceof RunSandbox)) throw new Error(box.problem);
  made.push(box);
  folders.set(box, layout.folder);
  return box;
}

const run = (box: RunSandbox, script: string) =>
  runInSandbox(launcher, box, folders.get(box)!, script, { env, killGraceMs: 1000 });

/** What a step sees of its sandbox, with what differs by run (its name, ids, pids) taken out. */
const VIEW = `
  echo "== mounts"; cut -d" " -f4- /proc/self/mountinfo | sort
  echo "== id"; id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups
  echo "== status"; grep -E "^(Cap|NoNewPrivs|Seccomp)" /proc/self/status
  echo "== nested"; unshare -U true 2>&1; unshare -m true 2>&1
  echo "== env"; env | sort
  echo "== net"; cut -d: -f1 /proc/net/dev | tail -n +3 | sort; hostname
  echo "== files"; ls -A / /dev /dev/pts /dev/shm /tmp "$HOME" .
  echo "== proc"; ls /proc | grep -v "^[0-9]"
  echo "== secrets"; for f in /etc/shadow /etc/gshadow /etc/shadow- /etc/gshadow-; do test -e $f && wc -c < $f 2>&1; done
  echo "== hidden"; ls -A ${hiddenHome} 2>&1
  echo "== writes"; for p in / /dev /dev/shm /run /tmp "$HOME" . /usr /etc; do touch "$p/w" 2>/dev/null && echo "$p" && rm "$p/w"; done
  echo "== proc writes"; find /proc -maxdepth 4 \\( -regex '/proc/[0-9]+' -o -path /proc/self -o -path /proc/thread-self -o -path /proc/sys \\) -prune -o -writable \\! -type d \\! -perm -0002 -print 2>/dev/null
  echo "== sysctl"; for p in kernel/hostname kernel/core_pattern vm/drop_caches; do test -w /proc/sys/$p && echo "$p writable"; done
  true
`;

describe("a run's sandbox cloned from the runner's template", () => {
  it("shows a step what a sandbox bubblewrap makes shows, but its pid 1, /run and /proc/sys", async () => {
    const fresh = await run(await makeRun("view", bwrapMade), VIEW);
    const clone = await run(await makeRun("view", cloned), VIEW);
    expect(fallbacks).toEqual([]);
    expect(clone.exitCode).toBe(0);
    const differ = (text: string) =>
      text
        .split("\n")
        // bwrap shows its holder at /run/runyard-sandbox-holder; a clone's /run is empty.
        .filter((line) => !line.includes("runyard-sandbox-holder"))
        // bwrap leaves /proc/sys writable where the step's uid is the host's root; a clone covers it.
        .filter((line) => !/^\/sys \/proc\/sys |writable$/.test(line))
        // bwrap binds the host's device nodes writable (a root runner's step may chmod them); a
        // clone binds them read-only (test/run-clone-attacks.test.ts).
        .map((line) => line.replace(/^(\/\w+ \/dev\/\w+) ro,nosuid,noexec,/, "$1 rw,nosuid,"))
        // A clone's /proc covers are noexec, as bwrap's own; the sandbox's (proc-covers.ts) binds are not.
        .map((line) => line.replace(/^(\/\S+ \/proc\/\S+ ro,nosuid,nodev,)noexec,/, "$1"))
        // bwrap's /proc/irq... covers' parent is mount 2, and a clone's; ids differ, not what is shown.
        .join("\n");
    expect(differ(clone.stdout)).toBe(differ(fresh.stdout));
    expect(clone.stdout).toContain("CapBnd:\t0000000000000000");
    expect(clone.stdout).toContain("NoNewPrivs:\t1");
    expect(clone.stdout).toMatch(/== nested\nunshare: unshare failed: No space left on device\n/);
    expect(clone.stdout).not.toContain("top secret");
    expect(clone.stdout).not.toMatch(/writable$/m);
    // No /proc file outside the processes' own is writable in either (proc-covers.ts: /proc/mtrr,
    // mode 0644, was on a 6.18 kernel).
    for (const made of [fresh, clone]) expect(made.stdout).toMatch(/== proc writes\n== sysctl/);
  });

  it("has pid 1 of its own, the holder, holding nothing but /dev/null, an empty /run, and no bwrap", async () => {
    const box = await makeRun("pid-one", cloned);
    // The holder is not dumpable, so a step cannot read its descriptors' targets: the host can.
    const result = await run(
      box,
      'tr "\\0" " " < /proc/1/cmdline; echo; ls -A /run | wc -l; ls /proc/1/fd | tr "\\n" " "; echo; readlink /proc/1/fd/0 || echo unreadable',
    );
    expect(result.stdout).toBe("runyard-sandbox-holder \n0\n0 1 2 \nunreadable\n");
    const fds = readdirSync(`/proc/${box.holder.pid}/fd`).map((fd) =>
      readlinkSync(`/proc/${box.holder.pid}/fd/${fd}`),
    );
    expect(fds).toEqual(["/dev/null", "/dev/null", "/dev/null"]);
  });

  it("keeps none of the fork-server's environment (the runner's, its tokens with it) in its holder or its door", async () => {
    // The fork-server started with this process's environment, and the holder (not exec'd under a
    // root runner) and the door are copies of the fork-server: each zeroes it.
    expect(process.env.PATH).toBeTruthy();
    const box = await makeRun("no-env", cloned);
    const holder = box.holder.pid;
    const helper = Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${holder}/status`, "utf8"))?.[1]);
    const runPids = readlinkSync(`/proc/${holder}/ns/pid`);
    const door = readFileSync(`/proc/${helper}/task/${helper}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .map(Number)
      .filter((pid) => pid !== holder && readlinkSync(`/proc/${pid}/ns/pid_for_children`) === runPids);
    expect(door).toHaveLength(1);
    for (const [who, pid] of [
      ["holder", holder],
      ["door", door[0]!],
    ] as const)
      expect(readFileSync(`/proc/${pid}/environ`, "latin1").replaceAll("\0", ""), who).toBe("");
  });

  it("keeps what run A writes, mounts or opens out of run B and of the template", async () => {
    const a = await makeRun("run-a", cloned);
    const b = await makeRun("run-b", cloned);
    const wrote = await run(
      a,
      "touch /A-root /dev/A-dev /dev/shm/A-shm /run/A-run && mkdir /A-dir && (sleep 30 3<>/dev/ptmx &) && sleep 0.5 && ls /dev/pts",
    );
    expect(wrote.stdout).toContain("0\n");
    const seen = await run(
      b,
      `ls -A / /dev /dev/shm /run /dev/pts ${join(root, "run-a")} 2>&1; readlink /proc/self/ns/user`,
    );
    expect(seen.stdout).not.toMatch(/A-root|A-dev|A-shm|A-run|A-dir|^0$/m);
    expect(seen.stdout).toContain("No such file or directory");
    const userA = (await run(a, "readlink /proc/self/ns/user")).stdout;
    expect(seen.stdout.trim().split("\n").at(-1)).not.toBe(userA.trim());
  });

  it("holds its processes in the run's cgroup from their birth", async () => {
    if ("problem" in pids) return;
    const box = await makeRun("cgroup", cloned);
    const pidsLine = (pid: string) =>
      `grep -E '${(pids as PidsHierarchy).v2 ? "^0::" : ":pids:"}' /proc/${pid}/cgroup`;
    const result = await run(box, `${pidsLine("self")}; ${pidsLine("1")}`);
    const [step, holder] = result.stdout.trim().split("\n");
    expect(step).toContain("sandbox-");
    expect(holder).toBe(step);
  });

  it("takes a pooled run's folder with its first command, in one request, as a sandbox bubblewrap made does", async () => {
    const box = await makeRun("pooled", cloned);
    const to = join(root, "renamed", "folder");
    const moves = [[folders.get(box)!, to]] as const;
    const result = await runInSandbox(launcher, box, to, "pwd; touch here", {
      env,
      killGraceMs: 1000,
      movesFirst: moves,
    });
    expect(result).toMatchObject({ status: "success", stdout: `${to}\n` });
    // Folders move before the first command only: a later request to move is refused, unstarted.
    const late = await runInSandbox(launcher, box, to, "echo ran", {
      env,
      killGraceMs: 1000,
      movesFirst: [[to, join(root, "later")]],
    });
    expect(late).toMatchObject({ status: "failed", sandboxRefused: true, stdout: "" });
    expect(late.spawnError).toContain("(move): EALREADY");
  });

  it("starts no first command whose folders cannot be moved, and says the sandbox refused it", async () => {
    const box = await makeRun("unmoved", cloned);
    const to = join(root, "unmoved-to");
    const result = await runInSandbox(launcher, box, to, "echo ran", {
      env,
      killGraceMs: 1000,
      movesFirst: [[join(root, "no-such-folder"), to]],
    });
    expect(result).toMatchObject({ status: "failed", sandboxRefused: true, stdout: "" });
    expect(result.spawnError).toContain("(move): ENOENT");
  });

  it("ends with nothing left: its holder, its namespaces, its cgroup", async () => {
    const box = await makeRun("ends", cloned);
    const inside = await run(box, "sleep 60 & grep -E ':pids:|^0::' /proc/self/cgroup | cut -d: -f3");
    const holder = box.holder.pid;
    await box.close();
    made.splice(made.indexOf(box), 1);
    expect(box.alive()).toBe(false);
    expect(() => process.kill(holder, 0)).toThrow();
    if (!("problem" in pids)) {
      const group = join((pids as PidsHierarchy).folder, basename(inside.stdout.trim()));
      expect(existsSync(group)).toBe(false);
    }
  });

  it("is entered by the process that cloned it, older than its holder, where bwrap's gets a door forked after; neither keeps the fork-server's stdio", async () => {
    if ("problem" in pids) throw new Error(`this case reads the run's pids cgroup: ${pids.problem}`);
    // The processes a sandbox keeps between its commands, from the host: its holder, its door.
    const kept = async (box: RunSandbox) => {
      // From the hierarchy's root: v1's pids line, or v2's.
      const line = (pids as PidsHierarchy).v2 ? "^0::" : ":pids:";
      const inside = await run(box, `grep -E '${line}' /proc/self/cgroup | cut -d: -f3`);
      const root = (pids as PidsHierarchy).v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/pids";
      const procs = join(root, inside.stdout.trim(), "cgroup.procs");
      const members = readFileSync(procs, "utf8").trim().split("\n").map(Number);
      // bwrap's own pid 1 aside (the holder's parent there): the door is a copy of the fork-server.
      const door = members.filter(
        (pid) => readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "fork-server",
      );
      expect(door).toHaveLength(1);
      // Its 0 to 2 were the fork-server's (its requests, its events to the runner, its log): the
      // sandbox's /dev/null once in, not a pipe of the host's.
      const standard = [0, 1, 2].map((fd) => readlinkSync(`/proc/${door[0]}/fd/${fd}`));
      expect(standard).toEqual(["/dev/null", "/dev/null", "/dev/null"]);
      return bornBefore(door[0]!, box.holder.pid);
    };
    expect(await kept(await makeRun("door-clone", cloned))).toBe(true);
    expect(await kept(await makeRun("door-bwrap", bwrapMade))).toBe(false);
  });

  it("takes a clone that fails for want of processes as passing: the runner does not stop cloning", async () => {
    if ("problem" in pids) throw new Error(`this case holds a run to one process: ${pids.problem}`);
    // Its maker joins the run's cgroup, limited to one process: the holder's fork fails EAGAIN
    // (which Node also names EWOULDBLOCK). A machine short of processes passes; a member's run
    // could bring it about, and every later run's sandbox would cost bwrap's start.
    const refusals: string[] = [];
    const tight = new Sandbox({
      ...options,
      pids: { hierarchy: pids as PidsHierarchy, max: 1 },
      clones: { onFallback: (reason) => refusals.push(reason) },
    });
    const base = join(root, "tight");
    const layout = { folder: join(base, "folder"), tmp: join(base, "tmp"), scratch: [join(base, "scratch")] };
    for (const path of [layout.folder, layout.tmp, ...layout.scratch]) mkdirSync(path, { recursive: true });
    const box = await RunSandbox.make(launcher, tight, layout);
    if (box instanceof RunSandbox) await box.close();
    expect(refusals).toEqual([]);
  });

  it("is cloned, given its folder and entered by a runner that is not root", async () => {
    if (process.getuid?.() !== 0)
      throw new Error("this case starts a runner as nobody: run the suite as root, as CI does");
    const folder = mkdtempSync(join(tmpdir(), "runyard-clone-nobody-"));
    chmodSync(folder, 0o777);
    // As exec-run-sandbox.test.ts: the runner's code and helpers copied where nobody may read them.
    const app = join(folder, "app");
    for (const part of ["dist/exec", "dist/core", "native/build/fork-server", "native/build/sandbox-holder"])
      cpSync(join(repoRoot, part), join(app, part), { recursive: true });
    const dist = (file: string) => JSON.stringify(join(app, "dist", "exec", file));
    const script = join(folder, "runner.mjs");
    writeFileSync(
      script,
      [
        `import { mkdirSync } from "node:fs";`,
        `import { ForkServerLauncher } from ${dist("process/fork-server.js")};`,
        `import { nativeHelperPath } from ${dist("native-helpers.js")};`,
        `import { RunSandbox } from ${dist("sandbox/run-sandbox.js")};`,
        `import { probeSandbox, Sandbox } from ${dist("sandbox/sandbox.js")};`,
        `import { SpawnLauncher } from ${dist("process/spawn-launcher.js")};`,
        `const root = ${JSON.stringify(folder)};`,
        `for (const name of ["made", "made2", "folder", "tmp", "scratch"]) mkdirSync(root + "/" + name);`,
        "const probe = await probeSandbox();",
        "const launcher = new ForkServerLauncher(nativeHelperPath('fork-server'), new SpawnLauncher(), { killGraceMs: 100 });",
        "const sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [], clones: { onFallback: (why) => process.stdout.write('fallback: ' + why + '\\n') } });",
        "const box = await RunSandbox.make(launcher, sandbox, { folder: root + '/made', tmp: root + '/tmp', scratch: [root + '/scratch'] });",
        "if (!(box instanceof RunSandbox)) throw new Error(box.problem);",
        "const result = await launcher.run(box.enter({ argv: ['/bin/sh', '-c', 'pwd; id -u; tr \"\\\\0\" \" \" < /proc/1/cmdline; echo; unshare -U true 2>/dev/null && echo made-userns || echo no-userns'], env: { PATH: '/usr/bin:/bin' }, killGraceMs: 100, movesFirst: [[root + '/made', root + '/folder']], onOutput: (_s, d) => process.stdout.write(d) }, root + '/folder'));",
        "process.stdout.write('status=' + result.status + (result.spawnError ?? '') + '\\n');",
        "await box.close();",
        // A clone made ahead of its run, its holder the holder's own program here, ends with its
        // fork-server killed outright (the test of the template below, as root).
        "const ahead = await RunSandbox.make(launcher, sandbox, { folder: root + '/made2', tmp: root + '/tmp', scratch: [root + '/scratch'] });",
        "if (!(ahead instanceof RunSandbox)) throw new Error(ahead.problem);",
        "const { readFileSync } = await import('node:fs');",
        "const parentOf = (pid) => Number(readFileSync('/proc/' + pid + '/stat', 'utf8').split(') ')[1].split(' ')[1]);",
        "const gone = (pid) => { try { return readFileSync('/proc/' + pid + '/stat', 'utf8').split(') ')[1].startsWith('Z'); } catch { return true; } };",
        "process.kill(parentOf(ahead.holder.pid), 'SIGKILL');",
        "for (let i = 0; i < 500 && !gone(ahead.holder.pid); i++) await new Promise((r) => setTimeout(r, 20));",
        "process.stdout.write(gone(ahead.holder.pid) ? 'ahead-ended\\n' : 'ahead-left\\n');",
        "if (!gone(ahead.holder.pid)) process.kill(ahead.holder.pid, 'SIGKILL');",
        "process.exit(0);",
      ].join("\n"),
    );
    const { stdout, stderr } = await execFileAsync(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, script],
      { env: { PATH: "/usr/bin:/bin", HOME: folder }, timeout: 30_000 },
    ).catch((error: { stdout: string; stderr: string }) => error);
    rmSync(folder, { recursive: true, force: true });
    expect(stdout, stderr).toBe(
      `${join(folder, "folder")}\n65534\nrunyard-sandbox-holder \nno-userns\nstatus=success\nahead-ended\n`,
    );
  });
});

/**
 * Whether process `a` was born before `b`, both alive: pids are handed out in turn, wrapping at
 * pid_max (start times, in ticks of 10 ms, cannot tell a process from the one it forked).
 */
function bornBefore(a: number, b: number): boolean {
  const max = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8"));
  return (b - a + max) % max < max / 2;
}

describe("the runner's template", () => {
  it("ends with its fork-server, even one killed outright: no bubblewrap or holder of it is left", async () => {
    const own = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
      killGraceMs: 1000,
    });
    try {
      const sandbox = new Sandbox({ ...options, clones: { onFallback: (reason) => fallbacks.push(reason) } });
      const template = await templateFor(own, sandbox);
      expect(template, fallbacks.join("; ")).toBeDefined();
      // From the holder up: bwrap's pid 1, bwrap, then the fork-server that started it.
      const chain: number[] = [];
      for (let pid = template!.holder.pid; pid > 1; pid = parentOf(pid)) chain.push(pid);
      const forkServer = chain.findIndex((pid) => exeOf(pid) === nativeHelperPath("fork-server"));
      expect(
        forkServer,
        `the fork-server above the template's holder (${chain.join(" < ")})`,
      ).toBeGreaterThan(0);
      const sandboxed = chain.slice(0, forkServer);
      expect(sandboxed.every(alive)).toBe(true);
      process.kill(chain[forkServer]!, "SIGKILL");
      await until("the template's processes are gone", () => !sandboxed.some(alive));
    } finally {
      await own.close();
    }
  });

  // Guards: a clone made ahead of its run (its door has had no command yet) ends with a
  // fork-server killed outright, as the template does; a clone a run took lives on, so its steps
  // get their grace from the runner's next life, as in a sandbox bubblewrap makes.
  it("takes the clones no run took with it when its fork-server is killed outright, not those a run took", async () => {
    const own = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
      killGraceMs: 1000,
    });
    const holders: number[] = [];
    try {
      const sandbox = new Sandbox({ ...options, clones: { onFallback: (reason) => fallbacks.push(reason) } });
      const boxes: RunSandbox[] = [];
      for (const name of ["ahead", "taken"]) {
        const base = join(root, `outright-${name}`);
        const layout = {
          folder: join(base, "folder"),
          tmp: join(base, "tmp"),
          scratch: [],
          home: env.HOME,
          homeFolder: join(base, "home"),
        };
        for (const path of [layout.folder, layout.tmp, layout.homeFolder])
          mkdirSync(path, { recursive: true });
        const box = await RunSandbox.make(own, sandbox, layout);
        if (!(box instanceof RunSandbox)) throw new Error(box.problem);
        boxes.push(box);
        holders.push(box.holder.pid);
        folders.set(box, layout.folder);
      }
      expect(fallbacks).toEqual([]);
      const [ahead, taken] = holders as [number, number];
      const taking = await runInSandbox(own, boxes[1]!, folders.get(boxes[1]!)!, "echo in", {
        env,
        killGraceMs: 1000,
      });
      expect(taking.stdout).toBe("in\n");
      // Each clone's pid 1 is the fork-server's child.
      const forkServer = parentOf(ahead);
      expect(exeOf(forkServer)).toBe(nativeHelperPath("fork-server"));
      expect(parentOf(taken)).toBe(forkServer);
      process.kill(forkServer, "SIGKILL");
      await until("the clone no run took is gone", () => !alive(ahead));
      expect(alive(taken)).toBe(true);
    } finally {
      for (const pid of holders) if (alive(pid)) process.kill(pid, "SIGKILL");
      await own.close();
    }
  });
});
