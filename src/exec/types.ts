/**
 * The executor contract: where a step attempt's processes run. An executor owns an attempt:
 * the environment the processes see, their scratch files and `$RUNYARD_OUTPUT`, so that a
 * container executor can bind-mount them where a process executor hands out host paths. One
 * folder per backend (process/, docker/, kubernetes/), each built in one `create*` function.
 */

import type { ErrorCode } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";

export type OutputStream = "stdout" | "stderr";

/** Receives raw output as it arrives, decoded as UTF-8 (a character split across chunks is kept whole). */
export type OutputHandler = (stream: OutputStream, data: string) => void;

/** What one attempt asks of its executor before its first command runs. */
export interface AttemptSetup {
  /** The step's own variables (request env, RUNYARD_ ones); the executor lays them over its base env. */
  env: Record<string, string>;
  cwd?: string;
  /**
   * The cwd's identity (`device:inode`) when the runner judged it (held-cwd.ts): an executor that
   * mounts the cwd by path checks where it runs that the folder it mounted is this one.
   */
  cwdIdentity?: string;
  /** What a sandbox shows the commands besides their cwd and scratch files (see `ExecExposure`). */
  exposure?: ExecExposure;
  /**
   * A platform run's attempt (a platform admin's, outside any tenant): a sandboxed executor gives
   * it the variables its operator passes on (`step_pass_env`) besides the allowlist.
   */
  platform?: boolean;
  /** Files the commands read (shell.run's script), by name; their paths come back in `ExecAttempt.files`. */
  files?: Record<string, string>;
  limits: {
    /** Time between SIGTERM and SIGKILL when a command is stopped. */
    killGraceMs: number;
  };
  /** Aborting stops the running command; its result's status is "canceled". */
  signal?: AbortSignal;
}

/** One command of an attempt. */
export interface AttemptCommand {
  /** argv; argv[0] is looked up in the attempt env's PATH. */
  argv: string[];
  /** Stops the process group after this long; the result's status is "timeout". */
  timeoutMs?: number;
  onOutput: OutputHandler;
}

/** What the step left in `$RUNYARD_OUTPUT`: its text ("" when it wrote nothing), or why it cannot be read. */
export type OutputFileContents = { text: string } | { problem: string };

/** An attempt in progress: the commands of one step attempt share its env and files. */
export interface ExecAttempt {
  /** The whole environment of every command, `$RUNYARD_OUTPUT` included. */
  readonly env: Readonly<Record<string, string>>;
  /** Paths of `AttemptSetup.files` as the commands see them. */
  readonly files: Readonly<Record<string, string>>;
  run(command: AttemptCommand): Promise<ExecResult>;
  /**
   * Runs all of an attempt's commands in turn as one unit, stopping at the first that fails (one
   * pod per attempt on Kubernetes, step-executor.ts); `failedIndex` says which failed.
   * Absent: each command goes to `run`.
   */
  runSequence?(
    argvs: string[][],
    command: Omit<AttemptCommand, "argv">,
  ): Promise<ExecResult & { failedIndex?: number }>;
  /**
   * The `$RUNYARD_OUTPUT` contents if they changed since the last call (undefined otherwise):
   * cheap enough to call before each chunk of output, so a secret written there is masked
   * from then on.
   */
  outputFileChanged(): string | undefined;
  /** Everything the step wrote to `$RUNYARD_OUTPUT`. */
  readOutputFile(): Promise<OutputFileContents>;
  /** Removes what the attempt created; nothing of it is used afterwards. */
  dispose(): Promise<void>;
}

export interface Executor {
  /** Values to mask in every attempt: the credentials of the base env, kept from the steps. */
  readonly hostSecrets: readonly string[];
  /**
   * Whether a cmd.run line that is one plain command may skip its shell (plain-command.ts):
   * only where a program that cannot start comes back as a `spawnError`. True when absent.
   */
  readonly plainCommands?: boolean;
  /**
   * Why the runner may not write a step's files into `folder` on the host (`output_path`): a
   * sandbox hides it from the steps. Undefined when it may, and where there is no sandbox.
   */
  hostFolderRefusal?(folder: string): string | undefined;
  /**
   * Why a step may not work in `cwd` where another executor (a container) mounts it: the folders
   * this executor's sandbox would refuse its own steps as their cwd. Undefined when it may, and
   * where there is no sandbox.
   */
  cwdRefusal?(cwd: string, exposure?: ExecExposure): string | undefined;
  /**
   * Resolves with an error message (and how to fix it) in place of an attempt when it cannot be
   * prepared; its code is SPAWN_FAILED unless `code` says otherwise.
   */
  startAttempt(setup: AttemptSetup): Promise<ExecAttempt | AttemptProblem>;
  /** Stops the executor's helpers and removes its scratch folder; running attempts are not waited for. */
  close(): void;
}

/** One process to run, as a process launcher (spawn-launcher.ts, fork-server.ts) sees it. */
export interface ExecRequest {
  /** argv; argv[0] is looked up in PATH. For a shell: ["bash", "-c", script]. */
  argv: string[];
  /** The whole environment of the process (nothing is inherited implicitly). */
  env: Record<string, string>;
  cwd?: string;
  /** What a sandboxed process sees besides the system and its cwd; ignored where there is no sandbox. */
  exposure?: ExecExposure;
  /** Stops the process group after this long; the result's status is "timeout". */
  timeoutMs?: number;
  /** Aborting stops the process group; the result's status is "canceled". */
  signal?: AbortSignal;
  /** Time between SIGTERM and SIGKILL. */
  killGraceMs: number;
  onOutput: OutputHandler;
  /**
   * Start the process inside the namespaces this process (a run's sandbox, see run-sandbox.ts)
   * holds, rather than in the launcher's own; only a launcher with `entersSandboxes` can.
   */
  enter?: SandboxToEnter;
}

/** A run's sandbox as the fork-server enters it: a process in it, and its namespaces' inodes. */
export interface SandboxToEnter {
  pid: number;
  /** The inode of each namespace (user, mnt, ipc, net, uts, pid) when the sandbox was made. */
  namespaces: readonly bigint[];
}

/** Folders a sandboxed process sees besides the system folders and its cwd (see sandbox.ts). */
export interface ExecExposure {
  /** Shown read-write: scratch files, an agent's state. */
  writable?: string[];
  /** Shown read-only: an agent's install folder. */
  readable?: string[];
  /**
   * The cwd is a folder the runner made for this work (an agent's worktree): it may lie inside
   * one of the sandbox's work roots although those are hidden.
   */
  runnerMadeCwd?: boolean;
  /**
   * Why the command may not work in its cwd, asked once more on the folder as a sandbox holds it
   * (its real path) before binding it: the runner's own check (core/work-folders.ts), so that a
   * link swapped after the runner checked the path leads nowhere else. Absent: only the sandbox's
   * own refusals (a folder it hides or makes its own).
   */
  cwdCheck?: (realPath: string) => string | undefined;
  /**
   * A folder of the run's own (see the runner's RunTmpFolders) shown as /tmp, so the steps of one
   * run share their /tmp; absent: an empty /tmp of the command's own.
   */
  tmp?: string;
  /** A folder of the run's own shown as `$HOME` (absent: an empty tmpfs there, the command's own). */
  homeFolder?: string;
  /** Where the attempt's scratch files go, so that the run's sandbox shows them (see run-sandbox.ts). */
  scratchDir?: string;
  /** The run's sandbox on this runner: commands it can take run there rather than in one of their own. */
  runSandbox?: RunSandboxEntry;
  /**
   * A network namespace of its own with egress through the runner's proxy (sandbox-network.ts);
   * absent: the host's network.
   */
  network?: SandboxNetwork;
}

/** A run's sandbox, made at its first command and entered by the next (see run-sandbox.ts). */
export interface RunSandboxEntry {
  /**
   * Runs `request` (its cwd a real path) in the run's sandbox through `launcher`, or resolves to
   * undefined when the sandbox cannot take it (a folder it was not made with, no fork-server).
   */
  run(request: ExecRequest & { cwd: string }, launcher: ProcessLauncher): Promise<ExecResult | undefined>;
}

export interface ExecResult {
  status: "success" | "failed" | "timeout" | "canceled";
  /** The exit code, or null when the process died of a signal or never started. */
  exitCode: number | null;
  /** The signal that ended the process, if any. */
  signal: string | null;
  durationMs: number;
  /**
   * Peak resident memory: exact from wait4 (the largest process of the group the launcher
   * reaped) with the fork-server; sampled from /proc with plain spawn.
   */
  memoryPeakBytes: number;
  /** User + system CPU time of the process group. */
  cpuMs: number;
  /** Set when the process could not be started at all (missing command, bad cwd). */
  spawnError?: string;
  /**
   * Set when the executor's platform ended the command (a Kubernetes Job's image not pulled, its
   * pod evicted or OOMKilled, the API gone): typed, and the command's failure is this.
   */
  fault?: ErrorInfo;
}

/** Starts one process group and supervises it to its end (timeouts, cancel, the group's survivors). */
export interface ProcessLauncher {
  run(request: ExecRequest): Promise<ExecResult>;
  /** Whether `run` can start a process inside a run's sandbox (`ExecRequest.enter`) now. */
  readonly entersSandboxes?: boolean;
  /** Inside a sandbox no command has run in yet, binds each folder `from` at `to` (see fork-server.ts). */
  moveInSandbox?(
    sandbox: SandboxToEnter,
    moves: ReadonlyArray<readonly [string, string]>,
  ): Promise<string | undefined>;
  /**
   * Opens (`open`) the sandbox's door, the process its commands are forked from, or ends it
   * (`done`, before the sandbox's cgroup goes). Resolves to why it could not be opened, if so.
   */
  sandboxDoor?(sandbox: SandboxToEnter, action: "open" | "done"): Promise<string | undefined>;
  /**
   * Stops the launcher's helper process, if it has one; resolves once it has exited, so a
   * command that awaits it ends after every process it started (and the shell's `time` counts them).
   */
  close(): Promise<void>;
}

/** Told of every process group an executor starts and sees end (see orphan-guard.ts). */
export interface ProcessGroupWatch {
  started(pgid: number): void;
  ended(pgid: number): void;
}

/** Why an attempt could not be prepared. */
export interface AttemptProblem {
  problem: string;
  hint?: string;
  code?: ErrorCode;
}

/**
 * What a sandbox needs to run on a network of its own: only loopback inside, and HTTP(S) out
 * through the runner's egress proxy, reached over a Unix socket bound into the sandbox and
 * relayed from 127.0.0.1:`proxyPort` by the static forwarder (native/egress-forward.c). The same
 * pieces serve a bwrap that wraps one command and one that wraps a run's long-lived helper: the
 * forwarder then runs once, before the helper, and every command the helper starts gets `env`.
 */
export interface SandboxNetwork {
  /** Which network it is (its proxy socket on the host): two sandboxes with the same id are alike. */
  readonly id: string;
  /** bwrap arguments: a network namespace of its own, the forwarder and the proxy's socket bound in, `env` set. */
  readonly bwrapArgs: readonly string[];
  /** The argv that starts the forwarder, which then runs `argv` as its child and exits as it does. */
  wrap(argv: readonly string[]): string[];
  /** What every command inside gets, so that curl, git, npm and pip go through the proxy. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * The nftables rules of plain TCP and UDP out (sandbox/sandbox-tcp.ts), written when a run's sandbox is
   * made (the runner's addresses and name servers as they are then) and set in it, pasta attached
   * after them; absent: HTTP(S) through the proxy only.
   */
  readonly plainTcp?: () => string;
}

/** A result the launcher did not measure (a container's, a Job's, one that never started): no memory or CPU. */
export function unmeasured(
  startedAt: number,
  result: Partial<ExecResult> & { status: ExecResult["status"] },
): ExecResult {
  return {
    exitCode: null,
    signal: null,
    durationMs: Math.round(performance.now() - startedAt),
    memoryPeakBytes: 0,
    cpuMs: 0,
    ...result,
  };
}

/** The result of a command that never started: failed (with why) or canceled before its start. */
export function notStarted(
  startedAt: number,
  status: "failed" | "canceled",
  spawnError?: string,
): ExecResult {
  return unmeasured(startedAt, { status, ...(spawnError === undefined ? {} : { spawnError }) });
}
