import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor } from "../src/exec/create-executor.js";
import type { ExecRequest, ExecResult, OutputStream } from "../src/exec/types.js";

const noWarning = (message: string) => {
  throw new Error(`unexpected warning: ${message}`);
};
/** The contract holds for both launchers: the fork-server and plain spawn, its fallback. */
const launchers = {
  "fork-server": createExecutor({ baseEnv: {}, onWarning: noWarning }),
  spawn: createExecutor({ baseEnv: {}, launcher: "spawn" }),
};
afterAll(() => {
  for (const launcher of Object.values(launchers)) launcher.close();
});
const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

interface Run {
  result: ExecResult;
  stdout: string;
  stderr: string;
  chunks: string[];
}

let executor: (typeof launchers)["spawn"] = launchers.spawn;

async function run(argv: string[], options: Partial<ExecRequest> = {}): Promise<Run> {
  const out: Record<OutputStream, string> = { stdout: "", stderr: "" };
  const chunks: string[] = [];
  const result = await executor.run({
    argv,
    env,
    killGraceMs: 2000,
    ...options,
    onOutput: (stream, data) => {
      out[stream] += data;
      chunks.push(data);
      options.onOutput?.(stream, data);
    },
  });
  return { result, stdout: out.stdout, stderr: out.stderr, chunks };
}

interface ProcessInfo {
  pid: number;
  pgrp: number;
  state: string;
  cmdline: string;
}

/**
 * Live processes: zombies left out (PID 1 of some containers never reaps orphans), and those the
 * kernel is ending (PF_EXITING in stat's flags: killed, their descriptors closed, not yet zombies).
 */
function liveProcesses(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "latin1").replaceAll("\0", " ");
      const exiting = (Number(fields[6]) & 0x4) !== 0;
      if (fields[0] !== "Z" && !exiting)
        found.push({ pid: Number(name), state: fields[0]!, pgrp: Number(fields[2]), cmdline });
    } catch {
      // gone while we looked
    }
  }
  return found;
}

const withMarker = (marker: string) => liveProcesses().filter((p) => p.cmdline.includes(marker));
/** The process carrying `marker` that is not its group's leader. */
const grandchildWith = (marker: string) => withMarker(marker).find((p) => p.pid !== p.pgrp);
const inGroup = (pgid: number) => liveProcesses().filter((p) => p.pgrp === pgid);

/**
 * A leader that starts a grandchild (carrying `marker` in its argv) and waits for it. The
 * grandchild itself prints "ready" once it runs, so the test knows it exists.
 */
function leaderWithGrandchild(marker: string): string[] {
  return ["bash", "-c", `bash -c 'echo ready; sleep 100; :' ${marker} & wait`];
}

describe.each(Object.keys(launchers) as Array<keyof typeof launchers>)(
  "ProcessExecutor through %s",
  (name) => {
    beforeAll(() => {
      executor = launchers[name];
    });

    it("reports success and exit code 0", async () => {
      const { result, stdout } = await run(["bash", "-c", "echo hello"]);
      expect(result).toMatchObject({ status: "success", exitCode: 0, signal: null });
      expect(stdout).toBe("hello\n");
    });

    it("reports a non-zero exit code as failed", async () => {
      const { result, stderr } = await run(["bash", "-c", "echo oops >&2; exit 3"]);
      expect(result).toMatchObject({ status: "failed", exitCode: 3, signal: null });
      expect(stderr).toBe("oops\n");
    });

    it("reports a process killed by a signal with a null exit code and the signal", async () => {
      const { result } = await run(["bash", "-c", "kill -KILL $$"]);
      expect(result).toMatchObject({ status: "failed", exitCode: null, signal: "SIGKILL" });
    });

    it("passes exactly the given environment and cwd", async () => {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax
      const { stdout } = await run(["bash", "-c", 'echo "$ONLY_THIS:${HOME:-no home}:$(pwd)"'], {
        env: { ...env, ONLY_THIS: "yes" },
        cwd: "/tmp",
      });
      expect(stdout).toBe("yes:no home:/tmp\n");
    });

    it("on timeout stops the whole group, the backgrounded grandchild included", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      let grandchild: ProcessInfo | undefined;
      const { result, stdout } = await run(leaderWithGrandchild(marker), {
        timeoutMs: 1500,
        onOutput: (_stream, data) => {
          if (data.includes("ready")) grandchild = grandchildWith(marker);
        },
      });
      expect(stdout).toBe("ready\n");
      expect(grandchild).toBeDefined();
      expect(result.status).toBe("timeout");
      expect(inGroup(grandchild!.pgrp)).toEqual([]);
      expect(withMarker(marker)).toEqual([]);
    });

    it("on abort stops the whole group and reports canceled", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      const controller = new AbortController();
      let grandchild: ProcessInfo | undefined;
      let abortedAt = 0;
      const { result } = await run(leaderWithGrandchild(marker), {
        signal: controller.signal,
        killGraceMs: 60_000,
        onOutput: (_stream, data) => {
          if (!data.includes("ready")) return;
          grandchild = grandchildWith(marker);
          abortedAt = performance.now();
          controller.abort();
        },
      });
      const stoppedMs = performance.now() - abortedAt;
      expect(grandchild).toBeDefined();
      expect(result.status).toBe("canceled");
      // Stopped by its SIGTERM, not at the end of the grace (60 s) nor of its sleep (100 s).
      expect(stoppedMs).toBeLessThan(30_000);
      expect(inGroup(grandchild!.pgrp)).toEqual([]);
      expect(withMarker(marker)).toEqual([]);
    });

    it("does not start anything when the signal is already aborted", async () => {
      const { result, stdout } = await run(["bash", "-c", "echo started"], { signal: AbortSignal.abort() });
      expect(result).toMatchObject({ status: "canceled", exitCode: null });
      expect(stdout).toBe("");
    });

    it("finishes when the leader exits although a grandchild keeps stdout open, and stops the grandchild", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      let leaderDoneAt = 0;
      const { result, stdout } = await run(
        ["bash", "-c", `bash -c 'sleep 100; :' ${marker} & echo leader done`],
        {
          killGraceMs: 60_000,
          onOutput: () => {
            leaderDoneAt ||= performance.now();
          },
        },
      );
      const stoppedMs = performance.now() - leaderDoneAt;
      expect(result).toMatchObject({ status: "success", exitCode: 0 });
      expect(stdout).toBe("leader done\n");
      // SIGTERM was enough: neither the grandchild's 100 s nor the 60 s grace were waited for.
      expect(stoppedMs).toBeLessThan(30_000);
      expect(withMarker(marker)).toEqual([]);
    });

    it("finishes soon after the group is gone although a process that left the group holds stdout", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      // The leader ends once the other has left its group (it says so through a FIFO): one that
      // had not yet would be stopped with the group, and hold nothing.
      const fifo = join(mkdtempSync(join(tmpdir(), "runyard-escaped-")), "left");
      try {
        const { result, stdout } = await run([
          "bash",
          "-c",
          `mkfifo ${fifo}; setsid bash -c 'echo left > "$1"; sleep 100; :' ${marker} ${fifo} & read _ < ${fifo}; echo leader done`,
        ]);
        expect(result).toMatchObject({ status: "success", exitCode: 0 });
        expect(stdout).toBe("leader done\n");
        // Finished while what escaped still holds stdout: waiting for its end (100 s) would find
        // it gone.
        expect(withMarker(marker)).not.toEqual([]);
      } finally {
        // It escaped the group (only a cgroup could hold it), so the test stops it itself.
        for (const escaped of withMarker(marker)) process.kill(-escaped.pgrp, "SIGKILL");
        rmSync(dirname(fifo), { recursive: true, force: true });
      }
    });

    it("sends SIGKILL after the grace to a group that ignores SIGTERM", async () => {
      const controller = new AbortController();
      const { result } = await run(["bash", "-c", 'trap "" TERM; echo ready; sleep 100; :'], {
        signal: controller.signal,
        killGraceMs: 300,
        onOutput: (_stream, data) => {
          if (data.includes("ready")) controller.abort();
        },
      });
      expect(result).toMatchObject({ status: "canceled", exitCode: null, signal: "SIGKILL" });
      expect(result.durationMs).toBeGreaterThanOrEqual(300);
    });

    it("resolves with a clear error when the program is not in PATH", async () => {
      const { result } = await run(["bashx", "-c", "true"]);
      expect(result).toMatchObject({
        status: "failed",
        exitCode: null,
        spawnError: 'cannot start "bashx": not found in PATH',
      });
    });

    it("resolves with a clear error when the program path does not exist", async () => {
      const { result } = await run(["/nope/bash"]);
      expect(result.spawnError).toBe('cannot start "/nope/bash": no such file');
    });

    it("resolves with a clear error when the cwd does not exist", async () => {
      const { result } = await run(["bash", "-c", "true"], { cwd: "/nope" });
      expect(result).toMatchObject({
        status: "failed",
        exitCode: null,
        spawnError: 'cwd "/nope" does not exist',
      });
    });

    it("keeps a UTF-8 character whole when it arrives in two chunks", async () => {
      const { stdout, chunks } = await run([
        "bash",
        "-c",
        "printf '\\xe2\\x82'; sleep 0.2; printf '\\xac\\n'",
      ]);
      expect(stdout).toBe("€\n");
      expect(chunks.join("")).not.toContain("\uFFFD");
    });

    it("reports the CPU time of the group, a child's included", async () => {
      const burn = "import time\nwhile time.process_time() < 0.5: pass";
      const { result } = await run(["bash", "-c", `python3 -c '${burn}'; :`]);
      expect(result.status).toBe("success");
      expect(result.cpuMs).toBeGreaterThan(200);
      expect(result.cpuMs).toBeLessThan(5000);
    });

    it("reports the peak memory of the group", async () => {
      const hold = "b = bytearray(100 * 1024 * 1024); import time; time.sleep(0.5)";
      const { result } = await run(["python3", "-c", hold]);
      expect(result.status).toBe("success");
      expect(result.memoryPeakBytes).toBeGreaterThan(80 * 1024 * 1024);
      expect(result.memoryPeakBytes).toBeLessThan(1024 * 1024 * 1024);
    });
  },
);
