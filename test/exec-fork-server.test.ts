import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  writeFileSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createExecutor } from "../src/exec/create-executor.js";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { killedBeforeStart, SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import type { ExecRequest } from "../src/exec/types.js";
import { cliPath, repoRoot, tempDir } from "./helpers/cli.js";
import { alive, exeOf, until } from "./helpers/processes.js";

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
const request = (argv: string[]): ExecRequest => ({ argv, env, killGraceMs: 1000, onOutput: () => {} });
const MiB = 1024 * 1024;

const started: ChildProcess[] = [];
afterEach(() => {
  for (const child of started.splice(0)) child.kill("SIGKILL");
});

describe("the fork-server", () => {
  it("reports the exact peak memory and CPU of a short-lived child that allocates 200 MB", async () => {
    const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
    // The child lives far less than one /proc sampling interval; wait4 still sees it whole.
    const allocate = "x = bytearray(200 * 1024 * 1024)";
    const result = await executor.run(request(["bash", "-c", `python3 -c '${allocate}'; true`]));
    executor.close();
    expect(result.status).toBe("success");
    expect(result.memoryPeakBytes).toBeGreaterThanOrEqual(200 * MiB);
    expect(result.memoryPeakBytes).toBeLessThan(260 * MiB);
    expect(result.cpuMs).toBeGreaterThan(0);
  });

  // Guards: a command's child shares the helper's memory until its exec (steps.c, spawn_command)
  // and sets the step's environment there for execvp's PATH search: each command searches its own
  // PATH, found or not, whatever the one before it had.
  it("looks each command up in its own PATH, never in an earlier command's", async () => {
    const dir = tempDir("runyard-fork-server-path-");
    writeFileSync(join(dir, "runyard-path-probe"), "#!/bin/sh\necho found\n", { mode: 0o755 });
    const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
    const run = async (path: Record<string, string>) => {
      const chunks: string[] = [];
      const result = await executor.run({
        argv: ["runyard-path-probe"],
        env: path,
        killGraceMs: 1000,
        onOutput: (_stream, text) => chunks.push(text),
      });
      return { result, output: chunks.join("") };
    };
    const found = await run({ PATH: `/nonexistent:${dir}` });
    expect(found.result.status).toBe("success");
    expect(found.output).toBe("found\n");
    for (let i = 0; i < 3; i++) {
      const missing = await run({});
      expect(missing.result.status).not.toBe("success");
      expect(missing.result.spawnError).toBe(`cannot start "runyard-path-probe": not found in PATH`);
      expect(missing.output).toBe("");
    }
    expect((await run({ PATH: dir })).output).toBe("found\n");
    executor.close();
  });

  // Guards: the helper waits for a command's child to reach its exec (spawn_command); a child held
  // before it (stopped by a process of the runner's user, or its program on a filesystem that does
  // not answer) is killed by its own timer after 10 s, its start fails saying so, and the helper
  // goes on. A tracer (ptrace, as root may) follows the helper's next child system call by system
  // call and holds it at its `setsid`, the first thing it does on its way to its exec once its
  // timer is armed (native/sandbox-entry.c, run_command), until the timer ends it: the same hold
  // every time, where a SIGSTOP had to land in a window of microseconds (a minute of tries missed
  // it in a full run).
  it("fails a start whose child was held before its exec, after its 10 s, and goes on", async () => {
    const helperPath = nativeHelperPath("fork-server");
    const helpers = () =>
      readdirSync(`/proc/${process.pid}/task`)
        .flatMap((task) =>
          readFileSync(`/proc/${process.pid}/task/${task}/children`, "utf8")
            .trim()
            .split(" ")
            .filter(Boolean)
            .map(Number),
        )
        .filter((pid) => exeOf(pid) === helperPath);
    // This worker may still have a helper of an executor an earlier file left open: this
    // executor's is the one that was not there before it.
    const before = new Set(helpers());
    const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
    expect((await executor.run(request(["/bin/true"]))).status).toBe("success");
    const mine = helpers().filter((pid) => !before.has(pid));
    expect(mine, "the executor's fork-server, new among this process's children").toHaveLength(1);
    const helper = mine[0]!;
    const tracer = spawn(
      existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3",
      ["-c", execHolder, String(helper)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    started.push(tracer);
    const said: string[] = [];
    let heard = "";
    // Its lines, and its end once its output is all in ("close", not "exit": a last line may
    // come after the exit).
    let closed: string | undefined;
    tracer.stdout!.on("data", (chunk: Buffer) => {
      heard += String(chunk);
      said.push(...String(chunk).split("\n").filter(Boolean));
    });
    tracer.on("close", (code, signal) => {
      closed = `the tracer ended (${code ?? signal}): ${heard}`;
    });
    const hear = (line: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (said.includes(line)) resolve();
          else if (closed) reject(new Error(closed));
        };
        tracer.stdout!.on("data", check);
        tracer.on("close", check);
        check();
      });
    await hear("ready");
    const startedAt = performance.now();
    const result = await executor.run({ ...request(["/bin/true"]), timeoutMs: 60_000 });
    const tookMs = performance.now() - startedAt;
    // Held on its way to its exec, its timer armed, until that timer ended it.
    await hear("held");
    await hear("killed");
    expect(result.status).toBe("failed");
    expect(result.spawnError).toBe(`cannot start "/bin/true": ${killedBeforeStart}`);
    expect(tookMs).toBeGreaterThanOrEqual(9_500);
    // The helper goes on: the next command starts and ends as any.
    expect((await executor.run(request(["/bin/echo", "after"]))).status).toBe("success");
    executor.close();
  }, 90_000);

  // Guards: the helper ignores SIGPIPE, SIGINT and SIGHUP itself; a step must not inherit that
  // (`kill -INT` of its own children, a server stopped by SIGHUP), as with Node's spawn.
  it("starts a command with no signal ignored", async () => {
    const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
    const chunks: string[] = [];
    const result = await executor.run({
      ...request(["grep", "^SigIgn:", "/proc/self/status"]),
      onOutput: (_stream, text) => chunks.push(text),
    });
    await executor.close();
    expect(result.status).toBe("success");
    expect(chunks.join("")).toBe("SigIgn:\t0000000000000000\n");
  });

  it("counts the CPU of an orphan of the step, which nobody in the step waited for", async () => {
    const executor = createExecutor({ baseEnv: {} });
    const burn = "import time\nwhile time.process_time() < 0.3: pass";
    // The subshell exits at once: python is an orphan, reaped by the helper; cat ends with it.
    const result = await executor.run(request(["bash", "-c", `(python3 -c '${burn}' &) | cat`]));
    executor.close();
    expect(result.status).toBe("success");
    expect(result.cpuMs).toBeGreaterThanOrEqual(300);
  });

  it("hands on every byte of a steady 16 MiB stream, in order, in a few hundred chunks", async () => {
    const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
    const chunks: string[] = [];
    // fold writes its output 4 KiB at a time, as most programs writing to a pipe do.
    const produce = "head -c 16777216 /dev/zero | tr '\\0' x | fold -w 99";
    const result = await executor.run({
      ...request(["bash", "-c", produce]),
      onOutput: (_stream, text) => chunks.push(text),
    });
    await executor.close();
    expect(result.status).toBe("success");
    // fold breaks every 99 characters; the last 82 end without a newline.
    const breaks = Math.floor((16 * MiB) / 99);
    expect(chunks.join("") === `${"x".repeat(99)}\n`.repeat(breaks) + "x".repeat(82)).toBe(true);
    // 16 MiB is 256 chunks of 64 KiB; output that keeps coming is gathered up to that size.
    expect(chunks.length).toBeLessThanOrEqual(2 * 256);
  });

  it("hands on characters cut between two writes whole, and bytes that are not UTF-8 as U+FFFD", async () => {
    const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
    const chunks: string[] = [];
    // \342\202\254 is €. Each write waits until the one before it was handed on (a line into a
    // FIFO from here), so each is a relay, and a chunk, of its own: a pause let a loaded machine
    // read two writes at once. A FIFO each: through one, the second read could open it while the
    // first line's writer had yet to close it, and end on that close, before its own line.
    const dir = tempDir();
    const fifos = [join(dir, "handed-on-1"), join(dir, "handed-on-2")];
    execFileSync("mkfifo", fifos);
    const next = (fifo: string) => `{ read -r _ < ${fifo} || exit 9; }`;
    const script = `printf 'a\\342\\202'; ${next(fifos[0]!)}; printf '\\254b\\n'; ${next(fifos[1]!)}; printf 'c\\377d\\360\\237'`;
    // Each write's failure, if any, kept for the end (a FIFO write fails once its reader is gone).
    const handOns: Promise<Error | undefined>[] = [];
    const result = await executor.run({
      ...request(["bash", "-c", script]),
      onOutput: (_stream, text) => {
        chunks.push(text);
        // The first two chunks each let the next write go (a third would wait for a reader forever).
        const fifo = fifos[chunks.length - 1];
        if (fifo)
          handOns.push(
            writeFile(fifo, "next\n").then(
              () => undefined,
              (error: Error) => error,
            ),
          );
      },
    });
    expect(await Promise.all(handOns)).toEqual([undefined, undefined]);
    await executor.close();
    expect(result.status).toBe("success");
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    // The step's last character never ends: U+FFFD, once its output has.
    expect(chunks.join("")).toBe("a€b\nc\ufffdd\ufffd");
  });

  it("hands on megabytes of characters of 2, 3 and 4 bytes whole, wherever the reads cut them", async () => {
    const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
    const chunks: string[] = [];
    // 10 bytes a line after one byte of ASCII: chunks of 64 KiB and reads of a megabyte cut
    // characters at every offset.
    const result = await executor.run({
      ...request(["bash", "-c", "printf x; yes 'é€😀' | head -n 300000"]),
      onOutput: (_stream, text) => chunks.push(text),
    });
    await executor.close();
    expect(result.status).toBe("success");
    expect(chunks.join("") === `x${"é€😀\n".repeat(300_000)}`).toBe(true);
  });

  it("leaves no folder of its event pipe behind, and works without one where none can be made", async () => {
    const tmp = tempDir();
    const before = process.env.TMPDIR;
    try {
      process.env.TMPDIR = tmp;
      const executor = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
      let output = "";
      const onOutput = (_stream: string, text: string) => {
        output += text;
      };
      expect((await executor.run({ ...request(["bash", "-c", "echo one"]), onOutput })).status).toBe(
        "success",
      );
      await executor.close();
      expect(output).toBe("one\n");
      expect(readdirSync(tmp)).toEqual([]);

      process.env.TMPDIR = join(tmp, "missing");
      const withoutPipe = createExecutor({ baseEnv: {}, onWarning: (message) => expect.fail(message) });
      expect((await withoutPipe.run({ ...request(["bash", "-c", "echo two"]), onOutput })).status).toBe(
        "success",
      );
      await withoutPipe.close();
      expect(output).toBe("one\ntwo\n");
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
    }
  });

  it("starts and relays other commands while a sandbox's clone is still being made, then says the clone's end", async () => {
    const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
      killGraceMs: 1000,
    });
    // A clone's maker first joins the run's cgroup through its cgroup.procs: a FIFO there holds
    // it until the test opens the other end, as mounts of a slow clone would.
    const procs = join(tempDir(), "cgroup.procs");
    execFileSync("mkfifo", [procs]);
    const template = { pid: process.pid, namespaces: [1n, 2n, 3n, 4n, 5n, 6n] };
    const clone = launcher.run({
      ...request(["runyard-sandbox-clone"]),
      clone: { template, steps: [`H${nativeHelperPath("sandbox-holder")}`], cgroupProcs: procs },
    });
    let said = "";
    const quick = await launcher.run({
      ...request(["sh", "-c", "echo started meanwhile"]),
      onOutput: (_stream, text) => {
        said += text;
      },
    });
    expect(quick.status).toBe("success");
    expect(said).toBe("started meanwhile\n");
    // Let the maker on: the template it names is no sandbox, so the clone fails, and says so.
    const reader = openSync(procs, constants.O_RDONLY);
    const cloned = await clone;
    closeSync(reader);
    await launcher.close();
    expect(cloned.status).toBe("failed");
    expect(cloned.spawnError).toMatch(/clone/);
  });

  it("falls back to plain spawn, warning once, when the helper is missing", async () => {
    const warnings: string[] = [];
    const executor = createExecutor({
      baseEnv: {},
      forkServerPath: "/nonexistent/fork-server",
      onWarning: (message) => warnings.push(message),
    });
    const result = await executor.run({ ...request(["bash", "-c", "echo $$"]) });
    executor.close();
    expect(result).toMatchObject({ status: "success", exitCode: 0 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("no fork-server at /nonexistent/fork-server");
  });

  it("runs the commands it had not started through plain spawn when the helper dies at once", async () => {
    const warnings: string[] = [];
    const executor = createExecutor({
      baseEnv: {},
      forkServerPath: "/bin/false",
      onWarning: (message) => warnings.push(message),
    });
    let output = "";
    const result = await executor.run({
      ...request(["bash", "-c", "echo still runs"]),
      onOutput: (_stream, data) => {
        output += data;
      },
    });
    expect(result).toMatchObject({ status: "success", exitCode: 0 });
    expect(output).toBe("still runs\n");
    expect(warnings[0]).toContain("the fork-server exited");
    expect((await executor.run(request(["true"]))).status).toBe("success");
    executor.close();
  });

  it("stops a step's grandchild when `runyard run` is killed with SIGKILL", async () => {
    const dir = tempDir();
    const workflow = join(dir, "hold.yaml");
    writeFileSync(
      workflow,
      `name: hold\nsteps:\n  - name: hold\n    action: shell.run\n    args:\n      script: |\n        sleep 300 &\n        echo $! > ${dir}/pid.tmp && mv ${dir}/pid.tmp ${dir}/pid\n        wait\n`,
    );
    const cli = spawn(process.execPath, [cliPath, "run", workflow], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: "1", RUNYARD_KILL_GRACE_MS: "500" },
      stdio: "ignore",
    });
    started.push(cli);
    await until("the step started its grandchild", () => existsSync(join(dir, "pid")));
    const grandchild = Number(readFileSync(join(dir, "pid"), "utf8").trim());
    expect(alive(grandchild)).toBe(true);
    cli.kill("SIGKILL");
    // Seen once under a full suite's load: the grandchild outlived the wait. Say who holds it.
    await until("the grandchild is gone", () => !alive(grandchild)).catch((error: Error) => {
      throw new Error(`${error.message}; ${processChain(grandchild)}`);
    });
  });

  it("stops every group when the runner's end of the event pipe closes before its death signal arrives", async () => {
    // When a runner dies, the kernel closes its files before it signals its children: a helper
    // relaying output in between finds the event pipe gone first. That must stop the steps too,
    // the silent grandchild included (the chatty step itself dies of SIGPIPE either way).
    const dir = tempDir();
    const fifo = join(tempDir(), "events"); // the helper removes the pipe's folder once it opened it
    const helper = spawn(nativeHelperPath("fork-server"), ["300", fifo], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    started.push(helper);
    const ready = await new Promise<Buffer>((resolve) => helper.stdout.once("data", resolve));
    expect(String.fromCharCode(ready[4] ?? 0)).toBe("p");
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const script = `sleep 300 & echo $! > ${dir}/pid.tmp && mv ${dir}/pid.tmp ${dir}/pid; while :; do echo x; sleep 0.01; done`;
    helper.stdin.write(helperMessage(0, "P"));
    helper.stdin.write(helperMessage(1, "S", [dir, "sh", "-c", script], [`PATH=${env.PATH}`]));
    await until("the step started its grandchild", () => existsSync(join(dir, "pid")));
    const grandchild = Number(readFileSync(join(dir, "pid"), "utf8").trim());
    expect(alive(grandchild)).toBe(true);
    closeSync(reader);
    await until("the helper is gone", () => helper.exitCode !== null || helper.signalCode !== null);
    await until("the grandchild is gone", () => !alive(grandchild)).catch((error: Error) => {
      throw new Error(`${error.message}; ${processChain(grandchild)}`);
    });
  });
  it("stops a sandboxed step that left its group, and leaves another run's step unharmed by a step that floods its pipes and exits", async () => {
    // Two steps of two runs through one helper, each in a bubblewrap sandbox: one starts a
    // process in a session of its own (out of its group) and floods its stdout and stderr; the
    // other is quiet. Neither the flood nor the first step's exit stops the helper or the second
    // step; the runner's death (its end of the event pipe closes) stops both, the process that
    // left its group included (the sandbox's pid 1 dies with the group, and its namespace with it).
    const probe = await probeSandbox();
    if (probe.isolation !== "sandbox") return;
    const sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [] });
    const dir = tempDir();
    const marker = `runyard-escape-${process.pid}-${Date.now()}`;
    const fifo = join(tempDir(), "events");
    const helper = spawn(nativeHelperPath("fork-server"), ["300", fifo], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    started.push(helper);
    await new Promise<Buffer>((resolve) => helper.stdout.once("data", resolve));
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const drain = setInterval(() => {
      const buffer = Buffer.alloc(1 << 20);
      try {
        while (readSync(reader, buffer) > 0) {}
      } catch {}
    }, 5);
    try {
      helper.stdin.write(helperMessage(0, "P"));
      const flood = "head -c 50000000 /dev/zero; head -c 5000000 /dev/zero >&2; exit 3";
      const quiet = `setsid bash -c 'exec -a ${marker}-escaped sleep 300' & exec -a ${marker}-quiet sleep 300`;
      for (const [id, script] of [
        [1, flood],
        [2, quiet],
      ] as const) {
        const argv = sandbox.command(["bash", "-c", script], { cwd: dir });
        helper.stdin.write(helperMessage(id, "S", [dir, ...argv], [`PATH=${env.PATH}`]));
      }
      await until("the quiet step runs", () => withName(marker).length === 2);
      // The flooding step has exited; the helper and the other run's step, escaped process and all, go on.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(helper.exitCode).toBeNull();
      expect(withName(marker)).toHaveLength(2);
    } finally {
      // The runner dies: its files close.
      clearInterval(drain);
      closeSync(reader);
      helper.stdin.end();
    }
    await until("the helper is gone", () => helper.exitCode !== null || helper.signalCode !== null);
    await until("every process of both steps is gone", () => withName(marker).length === 0);
  });
});

/** A request to the fork-server as its runner sends one: `S` (start) with cwd, argv and env, or a bare op. */
function helperMessage(
  id: number,
  op: string,
  [cwd, ...argv]: string[] = [],
  envList: string[] = [],
): Buffer {
  const body =
    op === "S"
      ? Buffer.concat([
          Buffer.from(new Uint32Array([argv.length, envList.length]).buffer),
          Buffer.from(`${[cwd, ...argv, ...envList].join("\0")}\0`),
        ])
      : Buffer.alloc(0);
  const head = Buffer.alloc(9);
  head.writeUInt32LE(5 + body.length, 0);
  head.writeUInt32LE(id, 4);
  head.write(op, 8, "latin1");
  return Buffer.concat([head, body]);
}

/** The process and its ancestors, each as `pid (name) state`, to say who keeps a process alive. */
function processChain(pid: number): string {
  const chain: string[] = [];
  for (let at = pid; at > 1 && chain.length < 8; ) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${at}/stat`, "latin1");
    } catch {
      chain.push(`${at} gone`);
      break;
    }
    const close = stat.lastIndexOf(")");
    const [state, parent] = stat.slice(close + 2).split(" ");
    chain.push(`${at} ${stat.slice(stat.indexOf("("), close + 1)} ${state}`);
    at = Number(parent);
  }
  return `process chain: ${chain.join(" <- ")}`;
}

/** The pids of processes whose command line starts with `name` (what `exec -a` set). */
function withName(name: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "latin1").startsWith(name)) found.push(Number(entry));
    } catch {}
  }
  return found;
}

/**
 * Attaches to the helper (argv[1]) with ptrace, follows its next child from its birth through each
 * system call it enters, and holds it at its `setsid`: says `held` with its timer armed (a SIGKILL
 * timer in /proc/PID/timers), then `killed` once that timer ended it. The helper is let go as soon
 * as the child is born; it waits for the child anyway (vfork).
 */
const execHolder = `
import ctypes, os, platform, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
SEIZE, CONT, SYSCALL, DETACH = 0x4206, 7, 24, 17
TRACESYSGOOD, TRACEFORK, TRACEVFORK, TRACECLONE = 1, 2, 4, 8
SETSID = {"x86_64": 112, "aarch64": 157}[platform.machine()]
def ptrace(request, pid, data=0):
    if libc.ptrace(request, pid, None, ctypes.c_void_p(data)) == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
helper = int(sys.argv[1])
ptrace(SEIZE, helper, TRACESYSGOOD | TRACEFORK | TRACEVFORK | TRACECLONE)
print("ready", flush=True)
child = None
while True:
    pid, status = os.waitpid(-1, 0x40000000)
    if os.WIFEXITED(status) or os.WIFSIGNALED(status):
        if pid == child:
            print("killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else "ended", flush=True)
            sys.exit(0)
        continue
    sig, event = os.WSTOPSIG(status), status >> 16
    if pid == helper:
        if child is not None or event:
            # Its child is born (or was): the helper goes untraced from here.
            ptrace(DETACH, pid, 0)
        else:
            ptrace(CONT, pid, 0 if sig == signal.SIGTRAP else sig)
        continue
    if child is None:
        child = pid
    if pid != child:
        ptrace(DETACH, pid, 0)
        continue
    if sig == signal.SIGTRAP | 0x80:
        number = int(open(f"/proc/{pid}/syscall").read().split()[0])
        if number == SETSID:
            if "signal: 9/" not in open(f"/proc/{pid}/timers").read():
                # Held with no timer to end it, it would wait for good: let go, and say so.
                print("held-unarmed", flush=True)
                ptrace(DETACH, pid, 0)
                sys.exit(1)
            print("held", flush=True)
            continue
    ptrace(SYSCALL, pid, 0)
`;
