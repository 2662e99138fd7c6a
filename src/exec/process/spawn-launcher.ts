import { type ChildProcessByStdio, spawn } from "node:child_process";
import { statSync } from "node:fs";
import type { Readable } from "node:stream";
import { OutputDecoder } from "../output-decoder.js";
import { GroupUsage, groupIsAlive, sampleGroups, signalGroup, watchGroup } from "../resources.js";
import {
  type ExecRequest,
  type ExecResult,
  notStarted,
  type OutputStream,
  type ProcessGroupWatch,
  type ProcessLauncher,
} from "../types.js";

/** How often the group is checked for survivors while it gets its SIGTERM grace. */
const GROUP_POLL_MS = 50;
/**
 * Once the group is gone, how long the output pipes may stay quiet before they are closed
 * anyway: a process that left the group (setsid) may still hold them, and nobody waits for it.
 */
const PIPE_DRAIN_MS = 250;

type Child = ChildProcessByStdio<null, Readable, Readable>;

/**
 * The fallback where the fork-server cannot start: Node's `spawn`, forking all of Node per command.
 *
 * Each request gets a process group of its own, so a timeout, a cancel or the leader's end stops
 * everything it started (`sleep 100 &` included): SIGTERM to the group, SIGKILL after `killGraceMs`.
 * A process that leaves the group (setsid) escapes; only a cgroup could hold it. Memory and CPU
 * are sampled from /proc (resources.ts), not exact.
 */
export class SpawnLauncher implements ProcessLauncher {
  /** `watch` hears of each group, so that a runner can stop what survives it (orphan-guard.ts). */
  constructor(private readonly watch?: ProcessGroupWatch) {}

  async run(request: ExecRequest): Promise<ExecResult> {
    const startedAt = performance.now();
    if (request.signal?.aborted) return notStarted(startedAt, "canceled");
    if (request.enter !== undefined)
      return notStarted(startedAt, "failed", "plain spawn cannot start a command in a run's sandbox");
    const problem = startProblem(request);
    if (problem) return notStarted(startedAt, "failed", problem);
    let child: Child;
    try {
      child = spawn(request.argv[0]!, request.argv.slice(1), {
        detached: true,
        env: request.env,
        cwd: request.cwd,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (error) {
      return notStarted(startedAt, "failed", describeSpawnError(request.argv[0]!, error));
    }
    const { watch } = this;
    if (!watch || child.pid === undefined) {
      return new Promise((resolve) => superviseGroup(child, request, startedAt, resolve));
    }
    const pgid = child.pid;
    watch.started(pgid);
    return new Promise<ExecResult>((resolve) => superviseGroup(child, request, startedAt, resolve)).finally(
      () => watch.ended(pgid),
    );
  }

  async close(): Promise<void> {}
}

function superviseGroup(
  child: Child,
  request: ExecRequest,
  startedAt: number,
  resolve: (result: ExecResult) => void,
): void {
  const pgid = child.pid;
  if (pgid === undefined) {
    // spawn reports a missing program or cwd through 'error', on the next tick.
    child.once("error", (error) =>
      resolve(notStarted(startedAt, "failed", describeSpawnError(request.argv[0]!, error))),
    );
    return;
  }
  child.on("error", () => {}); // only spawn failures are reported this way, and they are handled above

  const usage = new GroupUsage(pgid);
  usage.sampleLeader();
  const unwatch = watchGroup(usage);

  let stopReason: "timeout" | "canceled" | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let sigtermSent = false;
  let killTimer: NodeJS.Timeout | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  let receivedSinceDrainCheck = false;

  const readStream = (stream: Readable, name: OutputStream) => {
    const decoder = new OutputDecoder();
    stream.on("data", (chunk: Buffer) => {
      receivedSinceDrainCheck = true;
      const text = decoder.write(chunk);
      if (text) request.onOutput(name, text);
    });
    stream.on("end", () => {
      const rest = decoder.end();
      if (rest) request.onOutput(name, rest);
      // The leader closing its output usually means it is exiting; its times are final now.
      if (!exit) usage.sampleLeader();
    });
    stream.on("error", () => {});
  };
  readStream(child.stdout, "stdout");
  readStream(child.stderr, "stderr");

  const terminateGroup = () => {
    if (sigtermSent) return;
    sigtermSent = true;
    signalGroup(pgid, "SIGTERM");
    killTimer = setTimeout(() => {
      signalGroup(pgid, "SIGKILL");
      if (exit) {
        clearInterval(pollTimer);
        drainPipes();
      }
    }, request.killGraceMs);
  };

  const stop = (reason: "timeout" | "canceled") => {
    if (exit || stopReason) return;
    stopReason = reason;
    terminateGroup();
  };
  const timeoutTimer =
    request.timeoutMs === undefined ? undefined : setTimeout(() => stop("timeout"), request.timeoutMs);
  const onAbort = () => stop("canceled");
  request.signal?.addEventListener("abort", onAbort, { once: true });

  // Waits for the pipes to report their end; closes them if they stay open and quiet.
  const drainPipes = () => {
    if (drainTimer) return;
    const check = () => {
      if (receivedSinceDrainCheck) {
        receivedSinceDrainCheck = false;
        drainTimer = setTimeout(check, PIPE_DRAIN_MS);
        return;
      }
      child.stdout.destroy();
      child.stderr.destroy();
    };
    receivedSinceDrainCheck = false;
    drainTimer = setTimeout(check, PIPE_DRAIN_MS);
  };

  child.once("exit", (code, signal) => {
    exit = { code, signal };
    clearTimeout(timeoutTimer);
    request.signal?.removeEventListener("abort", onAbort);
    if (!groupIsAlive(pgid)) {
      clearTimeout(killTimer);
      drainPipes();
      return;
    }
    // The leader is gone but something it started is not: sample it once, then stop it.
    sampleGroups([usage]);
    terminateGroup();
    pollTimer = setInterval(() => {
      if (groupIsAlive(pgid)) return;
      clearInterval(pollTimer);
      clearTimeout(killTimer);
      drainPipes();
    }, GROUP_POLL_MS);
  });

  child.once("close", () => {
    clearTimeout(timeoutTimer);
    clearTimeout(killTimer);
    clearInterval(pollTimer);
    clearTimeout(drainTimer);
    request.signal?.removeEventListener("abort", onAbort);
    unwatch();
    const code = exit?.code ?? null;
    resolve({
      status: stopReason ?? (code === 0 ? "success" : "failed"),
      exitCode: code,
      signal: exit?.signal ?? null,
      durationMs: Math.round(performance.now() - startedAt),
      memoryPeakBytes: usage.memoryPeakBytes,
      cpuMs: usage.cpuMs,
    });
  });
}

/** Problems spawn would report only as an ambiguous ENOENT. */
export function startProblem(request: ExecRequest): string | undefined {
  if (request.argv.length === 0 || !request.argv[0]) return "no command given";
  if (request.cwd === undefined) return undefined;
  try {
    if (!statSync(request.cwd).isDirectory()) return `cwd "${request.cwd}" is not a folder`;
  } catch {
    return `cwd "${request.cwd}" does not exist`;
  }
  return undefined;
}

/** E2BIG, as a person reads it: which of a step's inputs the kernel refused, and why. */
export const tooBigToStart =
  "its environment and arguments are larger than the system takes (E2BIG): one variable or argument may hold at most 128 KiB, all together about 2 MiB";

/** Why a command a process of its own run stopped (SIGSTOP) between its fork and its exec did not start. */
export const stoppedBeforeStart = "a process of its run stopped it before it started (SIGSTOP)";

/** Why a command killed between its start and its exec (native/steps.c, spawn_command) did not start. */
export const killedBeforeStart =
  "it was killed before its program started: it had not reached it after 10 s (stopped by a signal, or its folder or program on a filesystem that does not answer)";

/** What to do about a spawn error `describeSpawnError` described; undefined: the usual hint. */
export function spawnErrorHint(message: string): string | undefined {
  if (message.includes(tooBigToStart))
    return "Pass large data in a file (write it in an earlier step, or keep it in the repository) and give the step its path, not its content, in a variable or a matrix value.";
  if (message.includes(stoppedBeforeStart))
    return "A command of this run sent SIGSTOP to processes it did not start (kill -STOP -1, a stop of every process it can see): stop only your own, or send SIGCONT to them; the run's later commands start again as usual.";
  if (message.includes(killedBeforeStart))
    return "Look for what stops processes of the runner's user (kill -STOP), or a network filesystem under the step's folder or on PATH that stopped answering (`stat` the folder, `mount`); a runner with its sandbox on forks each run's commands inside the run, where nothing outside can stop them.";
  return undefined;
}

export function describeSpawnError(program: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") {
    return program.includes("/")
      ? `cannot start "${program}": no such file`
      : `cannot start "${program}": not found in PATH`;
  }
  if (code === "EACCES") return `cannot start "${program}": permission denied`;
  if (code === "ENOEXEC") return `cannot start "${program}": not an executable`;
  if (code === "E2BIG") return `cannot start "${program}": ${tooBigToStart}`;
  return `cannot start "${program}": ${error instanceof Error ? error.message : String(error)}`;
}
