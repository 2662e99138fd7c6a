import { randomUUID } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StepAttemptRequest } from "../src/core/step-attempt.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import { runStepAttempt } from "../src/exec/step-attempt.js";
import type { ExecRequest, ExecResult, OutputStream } from "../src/exec/types.js";
import { until } from "./helpers/processes.js";

/**
 * The process executor's contract (timeouts, cancel, process groups, figures) through bwrap, for
 * both launchers, and what a sandboxed command can reach of the machine it runs on.
 */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);

const root = mkdtempSync(join(tmpdir(), "runyard-sandbox-test-"));
const hiddenHome = join(root, "home");
mkdirSync(hiddenHome);
writeFileSync(join(hiddenHome, "secret.key"), "top secret\n");
const workdir = join(root, "work");
mkdirSync(workdir);

const noWarning = (message: string) => {
  throw new Error(`unexpected warning: ${message}`);
};
const sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [hiddenHome] });
const launchers = {
  "fork-server": createExecutor({ baseEnv: {}, onWarning: noWarning, sandbox }),
  spawn: createExecutor({ baseEnv: {}, launcher: "spawn", sandbox }),
};
afterAll(() => {
  for (const launcher of Object.values(launchers)) launcher.close();
  rmSync(root, { recursive: true, force: true });
});
const env = { PATH: "/usr/local/bin:/usr/bin:/bin" };

let executor: (typeof launchers)["spawn"] = launchers.spawn;

async function run(argv: string[], options: Partial<ExecRequest> = {}) {
  const out: Record<OutputStream, string> = { stdout: "", stderr: "" };
  const result: ExecResult = await executor.run({
    argv,
    env,
    cwd: workdir,
    killGraceMs: 2000,
    ...options,
    onOutput: (stream, data) => {
      out[stream] += data;
      options.onOutput?.(stream, data);
    },
  });
  return { result, stdout: out.stdout, stderr: out.stderr };
}

/** Live processes of the host whose argv carries `marker` (zombies left out). */
function withMarker(marker: string): Array<{ pid: number; pgrp: number }> {
  const found: Array<{ pid: number; pgrp: number }> = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "latin1");
      if (fields[0] !== "Z" && cmdline.includes(marker))
        found.push({ pid: Number(name), pgrp: Number(fields[2]) });
    } catch {
      // gone while we looked
    }
  }
  return found;
}

describe.each(Object.keys(launchers) as Array<keyof typeof launchers>)(
  "a sandboxed command through %s",
  (name) => {
    beforeAll(() => {
      executor = launchers[name];
    });

    it("keeps exit codes, output and the given environment", async () => {
      const ok = await run(["bash", "-c", 'echo "$ONLY_THIS:$(pwd)"'], { env: { ...env, ONLY_THIS: "yes" } });
      expect(ok.result).toMatchObject({ status: "success", exitCode: 0, signal: null });
      expect(ok.stdout).toBe(`yes:${workdir}\n`);
      const failed = await run(["bash", "-c", "echo oops >&2; exit 3"]);
      expect(failed.result).toMatchObject({ status: "failed", exitCode: 3, signal: null });
      expect(failed.stderr).toBe("oops\n");
    });

    it("reports a command killed by a signal as exit code 128 + the signal, as a shell does", async () => {
      const { result } = await run(["bash", "-c", "kill -KILL $$"]);
      expect(result).toMatchObject({ status: "failed", exitCode: 137, signal: null });
    });

    it("reports a program that is not in PATH as the unsandboxed launchers do", async () => {
      const { result } = await run(["bashx", "-c", "true"]);
      expect(result).toMatchObject({
        status: "failed",
        exitCode: null,
        spawnError: 'cannot start "bashx": not found in PATH',
      });
    });

    it("on timeout stops everything the command started", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      let seen: Array<{ pid: number; pgrp: number }> = [];
      const { result } = await run(["bash", "-c", `bash -c 'echo ready; sleep 100; :' ${marker} & wait`], {
        timeoutMs: 1500,
        onOutput: (_stream, data) => {
          if (data.includes("ready")) seen = withMarker(marker);
        },
      });
      expect(seen.length).toBeGreaterThan(0);
      expect(result.status).toBe("timeout");
      expect(withMarker(marker)).toEqual([]);
    });

    it("on abort stops everything and reports canceled", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      const controller = new AbortController();
      let abortedAt = 0;
      const { result } = await run(["bash", "-c", `bash -c 'echo ready; sleep 100; :' ${marker} & wait`], {
        signal: controller.signal,
        killGraceMs: 60_000,
        onOutput: (_stream, data) => {
          if (!data.includes("ready")) return;
          abortedAt = performance.now();
          controller.abort();
        },
      });
      const stoppedMs = performance.now() - abortedAt;
      expect(result.status).toBe("canceled");
      // Stopped by its SIGTERM, not at the end of the grace (60 s) nor of its sleep (100 s).
      expect(stoppedMs).toBeLessThan(30_000);
      expect(withMarker(marker)).toEqual([]);
    });

    it("gives a command that traps SIGTERM its grace, then kills it", async () => {
      const controller = new AbortController();
      const { result } = await run(["bash", "-c", 'trap "" TERM; echo ready; sleep 100; :'], {
        signal: controller.signal,
        killGraceMs: 300,
        onOutput: (_stream, data) => {
          if (data.includes("ready")) controller.abort();
        },
      });
      expect(result.status).toBe("canceled");
      expect(result.durationMs).toBeGreaterThanOrEqual(300);
    });

    it("stops what the command left running when it exits, even what left its process group", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      let leaderDoneAt = 0;
      const { result, stdout } = await run(
        ["bash", "-c", `setsid bash -c 'sleep 100; :' ${marker} & echo leader done`],
        {
          onOutput: () => {
            leaderDoneAt ||= performance.now();
          },
        },
      );
      const endedMs = performance.now() - leaderDoneAt;
      expect(result).toMatchObject({ status: "success", exitCode: 0 });
      expect(stdout).toBe("leader done\n");
      // Ended with its leader, not when what it left running ends (100 s); counted from the
      // leader's output, so a slow sandbox start does not count.
      expect(endedMs).toBeLessThan(30_000);
      // bwrap reports the command's end as soon as its pid 1 has reaped the leader; that pid 1's
      // own exit then kills the rest of the sandbox's pid namespace. So what left the group is
      // killed a moment after the end, not at it (run B2: still there once, on a busy machine);
      // well before the 100 s of its sleep.
      await until("the command's leftovers are gone", () => withMarker(marker).length === 0, 30_000);
    });

    it("reports the CPU time and peak memory of what runs inside", async () => {
      // Held a second once it is all touched: Node's spawn (the launcher without the native
      // helpers) reads the group's peak from /proc every 100 ms, and a loaded machine's runner
      // once sampled mid-allocation and then not before the exit (76 of 100 MB).
      const burn =
        "import time\nb = bytearray(100 * 1024 * 1024)\nwhile time.process_time() < 0.5: pass\ntime.sleep(1)";
      const { result } = await run(["bash", "-c", `python3 -c '${burn}'; :`]);
      expect(result.status).toBe("success");
      expect(result.cpuMs).toBeGreaterThan(200);
      expect(result.memoryPeakBytes).toBeGreaterThan(80 * 1024 * 1024);
      expect(result.memoryPeakBytes).toBeLessThan(1024 * 1024 * 1024);
    });

    it("refuses a cwd inside a hidden folder, reached through a link too", async () => {
      const link = join(workdir, `to-home-${name}`);
      symlinkSync(hiddenHome, link);
      for (const cwd of [hiddenHome, link]) {
        const { result, stdout } = await run(["cat", "secret.key"], { cwd });
        expect(stdout).toBe("");
        expect(result.spawnError).toBe(
          `cwd "${hiddenHome}" is inside ${hiddenHome}, which sandboxed commands cannot see`,
        );
      }
    });

    it("sees no other process: only its own in a fresh /proc", async () => {
      const { stdout } = await run([
        "bash",
        "-c",
        "ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/1/cmdline | tr '\\0' ' '",
      ]);
      const [count, init] = stdout.trim().split("\n");
      // bwrap's init, the shell, ls, grep and wc at most.
      expect(Number(count)).toBeLessThanOrEqual(5);
      expect(init).toMatch(/^bwrap /);
    });

    it("reads nothing of the machine's password and group secrets it could read on the host", async () => {
      const secrets = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers"].filter(
        (file) => {
          try {
            readFileSync(file);
            return true;
          } catch {
            return false;
          }
        },
      );
      const script = secrets
        .map((file) => `printf '%s %s\\n' ${file} "$(cat ${file} 2>/dev/null | wc -c)"`)
        .join("\n");
      const { stdout } = await run(["bash", "-c", script || "true"]);
      expect(stdout.trim().split("\n").filter(Boolean)).toEqual(secrets.map((file) => `${file} 0`));
    });

    it("cannot read a hidden folder, the host's /tmp, or connect to a unix socket there", async () => {
      const socketPath = join(root, `s-${name}.sock`);
      const server: Server = createServer((socket) => socket.end("connected\n"));
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
      try {
        const script = [
          `cat ${join(hiddenHome, "secret.key")} || echo no-secret`,
          `python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect("${socketPath}"); print(s.recv(99))' 2>/dev/null || echo no-socket`,
          "ls /var/run/docker.sock /run/docker.sock 2>/dev/null || echo no-docker",
          "id -u",
        ].join("\n");
        const { stdout } = await run(["bash", "-c", script], { cwd: join(workdir) });
        expect(stdout).not.toContain("top secret");
        expect(stdout).not.toContain("connected");
        expect(stdout.split("\n")).toEqual(
          expect.arrayContaining([
            "no-secret",
            "no-socket",
            "no-docker",
            process.getuid?.() === 0 ? "65534" : String(process.getuid?.()),
          ]),
        );
      } finally {
        server.close();
      }
    });
  },
);

describe("a sandboxed step attempt", () => {
  it("writes exports to $RUNYARD_OUTPUT, runs a script too long to inline from its file, and leaves no scratch file", async () => {
    const request = StepAttemptRequest.parse({
      run_id: "run1",
      step: "build",
      host: "local",
      attempt: 1,
      action: "shell.run",
      env: {},
      cwd: workdir,
      // Over the inline limit: the script goes to the attempt's scratch folder.
      script: `# ${"x".repeat(50_000)}\necho "VERSION=1.2.3" >> "$RUNYARD_OUTPUT"\nls "$(dirname "$RUNYARD_OUTPUT")/.." | wc -l\necho "$RUNYARD_OUTPUT"\n`,
    });
    let stdout = "";
    const result = await runStepAttempt(launchers["fork-server"], request, {
      killGraceMs: 1000,
      onOutput: (stream, data) => {
        if (stream === "stdout") stdout += data;
      },
    });
    expect(result.status, JSON.stringify(result.error)).toBe("success");
    expect(result.exports).toEqual({ VERSION: "1.2.3" });
    // The scratch folder shows this attempt's own folder alone, which is gone afterwards.
    const [count, output] = stdout.trim().split("\n");
    expect(count).toBe("1");
    expect(existsSync(dirname(output!))).toBe(false);
  });
});
