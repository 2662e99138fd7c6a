import { execFile } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { findPidsHierarchy } from "../src/exec/sandbox/run-cgroup.js";
import { RunSandbox, RunSandboxSlot } from "../src/exec/sandbox/run-sandbox.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import type { ExecRequest } from "../src/exec/types.js";
import { repoRoot } from "./helpers/cli.js";
import { runInSandbox } from "./helpers/run-sandbox-command.js";

const execFileAsync = promisify(execFile);

/**
 * A run's sandbox made once by bubblewrap and entered by each of the run's commands through the
 * fork-server: what the commands share, what they cannot see, and that each is a process group
 * of the host the runner can time out, cancel and count.
 */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);

const root = mkdtempSync(join(tmpdir(), "runyard-run-sandbox-test-"));
const hiddenHome = join(root, "home");
mkdirSync(hiddenHome);
writeFileSync(join(hiddenHome, "secret.key"), "top secret\n");
const sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [hiddenHome] });
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

function layoutFor(name: string) {
  const base = join(root, name);
  const folder = join(base, "folder");
  const tmp = join(base, "tmp");
  const scratch = join(hiddenHome, `${name}-scratch`);
  for (const path of [folder, tmp, scratch]) mkdirSync(path, { recursive: true });
  return { folder, tmp, scratch: [scratch], home: env.HOME };
}

async function makeRun(name: string): Promise<RunSandbox> {
  const layout = layoutFor(name);
  const box = await RunSandbox.make(launcher, sandbox, layout);
  if (!(box instanceof RunSandbox)) throw new Error(box.problem);
  made.push(box);
  folders.set(box, layout.folder);
  return box;
}

const run = (box: RunSandbox, script: string, options: Partial<ExecRequest> = {}) =>
  runInSandbox(launcher, box, options.cwd ?? folders.get(box)!, script, {
    env,
    killGraceMs: 1000,
    ...options,
  });

describe("a run's sandbox", () => {
  it("runs each command of the run inside it, in the run's folder, as a user without capabilities", async () => {
    const box = await makeRun("first");
    const result = await run(
      box,
      'pwd; id -u; grep CapEff /proc/self/status; cat /proc/1/cmdline | tr "\\0" " "; echo',
    );
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    const [pwd, uid, caps, init] = result.stdout.split("\n");
    expect(pwd).toBe(join(root, "first", "folder"));
    expect(uid).toBe(process.getuid?.() === 0 ? "65534" : String(process.getuid?.()));
    expect(caps).toMatch(/CapEff:\s+0+$/);
    expect(init).toContain("bwrap");
  });

  it("keeps /tmp and $HOME from one command of the run to the next", async () => {
    const box = await makeRun("shared");
    expect((await run(box, 'echo one > /tmp/note; echo two > "$HOME/note"')).exitCode).toBe(0);
    const second = await run(box, 'cat /tmp/note "$HOME/note"');
    expect(second.stdout).toBe("one\ntwo\n");
    expect(readFileSync(join(root, "shared", "tmp", "note"), "utf8")).toBe("one\n");
  });

  it("shows no other run's folder, /tmp or process, nor the hidden home", async () => {
    const a = await makeRun("tenant-a");
    const b = await makeRun("tenant-b");
    await run(a, "echo secret > private.txt; echo a > /tmp/a; sleep 30 & echo started");
    const seen = await run(
      b,
      `ls ${join(root, "tenant-a", "folder")} 2>&1; ls /tmp; cat ${join(hiddenHome, "secret.key")} 2>&1; ls /proc | grep -c '^[0-9]'`,
    );
    expect(seen.stdout).not.toContain("private.txt");
    expect(seen.stdout).not.toContain("\na\n");
    expect(seen.stdout).not.toContain("top secret");
    // bwrap's pid 1, the holder, the shell and its pipeline: nothing of run A.
    expect(Number(seen.stdout.trim().split("\n").at(-1))).toBeLessThanOrEqual(5);
  });

  it("reports the host's pid of each command, so the runner can stop its group", async () => {
    const box = await makeRun("stop");
    // Not stopped, the sleep would outlast the test's timeout.
    const result = await run(box, "sleep 600", { timeoutMs: 300 });
    expect(result.status).toBe("timeout");
    const canceled = new AbortController();
    const pending = run(box, "trap 'echo bye; exit 3' TERM; sleep 30 & wait", { signal: canceled.signal });
    setTimeout(() => canceled.abort(), 300);
    const stopped = await pending;
    expect(stopped.status).toBe("canceled");
    expect(stopped.stdout).toContain("bye");
  });

  it("says why a command cannot start in it, as for any command", async () => {
    const box = await makeRun("missing");
    const result = await launcher.run(
      box.enter(
        { argv: ["/no/such/program"], env, killGraceMs: 100, onOutput: () => {} },
        join(root, "missing", "folder"),
      ),
    );
    expect(result.status).toBe("failed");
    expect(result.spawnError).toBe(`cannot start "/no/such/program": no such file`);
  });

  it("is never entered in place of another: a pid that now belongs to another sandbox is refused", async () => {
    const mine = await makeRun("stale-mine");
    const other = await makeRun("stale-other");
    const result = await launcher.run({
      argv: ["/bin/true"],
      env,
      killGraceMs: 100,
      onOutput: () => {},
      cwd: folders.get(other)!,
      // The other sandbox's pid with this one's namespaces: what a reused pid would look like.
      enter: { pid: other.holder.pid, namespaces: mine.holder.namespaces },
    });
    expect(result.status).toBe("failed");
    expect(result.spawnError).toContain("ESRCH");
  });

  it("is made again for the run's next command when a command of the run ended it", async () => {
    const layout = layoutFor("remade");
    const slot = new RunSandboxSlot(sandbox, layout, { idleMs: 60_000 });
    const inSlot = async (script: string) => {
      let stdout = "";
      const result = await slot.run(
        {
          argv: ["/bin/sh", "-c", script],
          env,
          cwd: layout.folder,
          exposure: { tmp: layout.tmp, scratchDir: layout.scratch[0]! },
          killGraceMs: 100,
          onOutput: (_stream, data) => {
            stdout += data;
          },
        },
        launcher,
      );
      return { result, stdout };
    };
    try {
      // The command outlives the holder only until the sandbox's pid 1 goes, which ends it too.
      const first = await inSlot("readlink /proc/self/ns/pid; kill -KILL 2; sleep 30");
      expect(first.result?.status).toBe("failed");
      const second = await inSlot("readlink /proc/self/ns/pid");
      expect(second.result?.status).toBe("success");
      expect(second.stdout).toMatch(/^pid:\[\d+\]\n$/);
      expect(second.stdout).not.toBe(first.stdout.split("\n")[0]);
    } finally {
      await slot.close();
    }
  });

  it("is made, given its folder and entered by a runner that is not root (its user namespace nested by --disable-userns)", async () => {
    if (process.getuid?.() !== 0)
      throw new Error("this case starts a runner as nobody: run the suite as root, as CI does");
    const folder = mkdtempSync(join(tmpdir(), "runyard-run-sandbox-nobody-"));
    chmodSync(folder, 0o777);
    // The runner reads its code and fork-server from a copy in its own folder: a checkout may lie
    // under a folder only root enters (a home of mode 0700), as a user's clone often does.
    const app = join(folder, "app");
    for (const part of ["dist/exec", "dist/core", "native/build/fork-server"])
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
        `for (const name of ["made", "folder", "tmp", "scratch"]) mkdirSync(root + "/" + name);`,
        "const probe = await probeSandbox();",
        "const launcher = new ForkServerLauncher(nativeHelperPath('fork-server'), new SpawnLauncher(), { killGraceMs: 100 });",
        "const box = await RunSandbox.make(launcher, new Sandbox({ bwrap: probe.bwrap, hide: [] }), { folder: root + '/made', tmp: root + '/tmp', scratch: [root + '/scratch'] });",
        "if (!(box instanceof RunSandbox)) throw new Error(box.problem);",
        "const result = await launcher.run(box.enter({ argv: ['/bin/sh', '-c', 'pwd; id -u; unshare -U true 2>/dev/null && echo made-userns || echo no-userns'], env: { PATH: '/usr/bin:/bin' }, killGraceMs: 100, movesFirst: [[root + '/made', root + '/folder']], onOutput: (_s, d) => process.stdout.write(d) }, root + '/folder'));",
        "process.stdout.write('status=' + result.status + (result.spawnError ?? '') + '\\n');",
        "await box.close(); await launcher.close();",
      ].join("\n"),
    );
    const { stdout, stderr } = await execFileAsync(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, script],
      { env: { PATH: "/usr/bin:/bin", HOME: folder }, timeout: 30_000 },
    ).catch((error: { stdout: string; stderr: string }) => error);
    expect(stdout, stderr).toBe(`${join(folder, "folder")}\n65534\nno-userns\nstatus=success\n`);
  });

  it("ends everything in it when it is closed", async () => {
    const box = await makeRun("closed");
    const pending = run(box, "sleep 60");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await box.close();
    const result = await pending;
    expect(result.status).not.toBe("success");
  });

  it("starts each command inside the run's cgroup, and removes the cgroup when it is closed", async () => {
    const hierarchy = findPidsHierarchy();
    if ("problem" in hierarchy) throw new Error(hierarchy.problem);
    const limited = new Sandbox({ bwrap: probe.bwrap, hide: [], pids: { hierarchy, max: 64 } });
    const layout = layoutFor("cgroup");
    const box = await RunSandbox.make(launcher, limited, layout);
    if (!(box instanceof RunSandbox)) throw new Error(box.problem);
    // The pids hierarchy's line of /proc/PID/cgroup (v1's "N:pids:PATH", else v2's "0::PATH").
    const groupIn = (text: string) =>
      text
        .split("\n")
        .find((line) => line.includes(":pids:") || line.startsWith("0::"))
        ?.replace(/^[^:]*:[^:]*:/, "");
    const group = groupIn(readFileSync(`/proc/${box.holder.pid}/cgroup`, "utf8"))!;
    expect(group).toMatch(/\/runyard\/sandbox-[0-9a-f]{16}$/);
    const folder = join(hierarchy.folder, group.split("/").at(-1)!);
    // Each command is a fork of the sandbox's door: in the run's cgroup from its birth.
    const results = await Promise.all(
      [1, 2, 3].map(() => run(box, "grep -E ':pids:|^0::' /proc/self/cgroup", { cwd: layout.folder })),
    );
    for (const result of results) expect(groupIn(result.stdout), result.stderr).toBe(group);
    const procs = readFileSync(join(folder, "cgroup.procs"), "utf8").trim().split("\n").map(Number);
    expect(procs).toContain(box.holder.pid);
    // bwrap's pid 1, the holder and the sandbox's door, which goes first when the sandbox closes:
    // the group is removed, not left busy.
    expect(procs).toHaveLength(3);
    await box.close();
    expect(existsSync(folder)).toBe(false);
  });
});
