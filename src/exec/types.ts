/**
 * The executor contract: where a step attempt's processes run. An executor owns an attempt's env,
 * scratch files and `$RUNYARD_OUTPUT` (a container executor bind-mounts what a process executor
 * hands out as host paths). One folder per backend, each built in one `create*` function.
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
  /** The cwd's `device:inode` (held-cwd.ts): an executor that mounts it by path checks it is this one. */
  cwdIdentity?: string;
  /** What a sandbox shows the commands besides their cwd and scratch files (see `ExecExposure`). */
  exposure?: ExecExposure;
  /** A platform admin's run (no tenant): a sandbox also passes it `step_pass_env` besides the allowlist. */
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
   * Runs the attempt's commands in turn as one unit (one pod per attempt on Kubernetes), stopping
   * at the first that fails, `failedIndex`. Absent: each command goes to `run`.
   */
  runSequence?(
    argvs: string[][],
    command: Omit<AttemptCommand, "argv">,
  ): Promise<ExecResult & { failedIndex?: number }>;
  /**
   * The `$RUNYARD_OUTPUT` contents if changed since the last call: cheap enough to call before each
   * output chunk, so a secret written there is masked from then on.
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
   * Why a step may not work in `cwd` where another executor (a container) mounts it: what this
   * executor's sandbox would refuse as its own steps' cwd. Undefined when it may, or no sandbox.
   */
  cwdRefusal?(cwd: string, exposure?: ExecExposure): string | undefined;
  /** Resolves to a problem (code SPAWN_FAILED unless `code` says) when the attempt cannot be prepared. */
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
  /** Start in the namespaces of the run's sandbox (run-sandbox.ts); needs `entersSandboxes`. */
  enter?: SandboxToEnter;
  /**
   * With `enter`, its first command: inside the sandbox each folder `from` is bound at `to` first
   * (a sandbox made ahead of its run given the run's folders), in the same
   * request; the command starts only once they are, else the result says `sandboxRefused`.
   */
  movesFirst?: ReadonlyArray<readonly [string, string]>;
  /**
   * Not a command: a run's sandbox cloned from `template` (sandbox-template.ts), whose holder is
   * the process started (`argv` names it in messages only); needs `entersSandboxes`.
   */
  clone?: SandboxClone;
  /** Told the process's pid (its group's id) once it has started. */
  onStarted?: (pid: number) => void;
}

/** How a run's sandbox is cloned from a template (native/sandbox-clone.c, the fork-server's 'K'). */
export interface SandboxClone {
  template: SandboxToEnter;
  /** The clone's steps, each a kind letter and a path (some followed by a second path). */
  steps: string[];
  /** The run's pids cgroup's `cgroup.procs`, joined before its holder is born. */
  cgroupProcs?: string;
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
  /** The runner made the cwd (an agent's worktree): it may lie inside a hidden work root. */
  runnerMadeCwd?: boolean;
  /**
   * The runner's cwd check (core/work-folders.ts), asked again on the real path the sandbox holds
   * before binding it, so a link swapped after the runner's check leads nowhere else. Absent: only
   * the sandbox's own refusals.
   */
  cwdCheck?: (realPath: string) => string | undefined;
  /** A run's folder (RunTmpFolders) shown as /tmp, shared by its steps; absent: an empty /tmp of its own. */
  tmp?: string;
  /** A folder of the run's own shown as `$HOME` (absent: an empty tmpfs there, the command's own). */
  homeFolder?: string;
  /** Where the attempt's scratch files go, so that the run's sandbox shows them (see run-sandbox.ts). */
  scratchDir?: string;
  /** The run's sandbox on this runner: commands it can take run there rather than in one of their own. */
  runSandbox?: RunSandboxEntry;
  /** A network namespace of its own, egress through the runner's proxy; absent: the host's network. */
  network?: SandboxNetwork;
}

/** A run's sandbox, made at its first command and entered by the next (see run-sandbox.ts). */
export interface RunSandboxEntry {
  /**
   * Runs `request` (cwd a real path) in the run's sandbox through `launcher`; undefined when the
   * sandbox cannot take it (a folder it was not made with, no fork-server).
   */
  run(request: ExecRequest & { cwd: string }, launcher: ProcessLauncher): Promise<ExecResult | undefined>;
}

export interface ExecResult {
  status: "success" | "failed" | "timeout" | "canceled";
  /** The exit code, or null when the process died of a signal or never started. */
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  /** Peak RSS: exact from wait4 (largest reaped) with the fork-server; sampled from /proc with spawn. */
  memoryPeakBytes: number;
  /** User + system CPU time of the process group. */
  cpuMs: number;
  /** Set when the process could not be started at all (missing command, bad cwd). */
  spawnError?: string;
  /**
   * With `movesFirst`: the sandbox could not take the command (its folders could not be moved, or
   * its door is gone). It did not start, and may start in another sandbox.
   */
  sandboxRefused?: true;
  /** The platform ended it (a Job's image not pulled, pod evicted or OOMKilled, API gone): the failure. */
  fault?: ErrorInfo;
}

/** Starts one process group and supervises it to its end (timeouts, cancel, the group's survivors). */
export interface ProcessLauncher {
  run(request: ExecRequest): Promise<ExecResult>;
  /** Whether `run` can start a process inside a run's sandbox (`ExecRequest.enter`) now. */
  readonly entersSandboxes?: boolean;
  /**
   * Opens the sandbox's door (the process its commands fork from) or ends it (`done`, before the
   * sandbox's cgroup goes); resolves to why it could not be opened.
   */
  sandboxDoor?(sandbox: SandboxToEnter, action: "open" | "done"): Promise<string | undefined>;
  /**
   * Stops the launcher's helper, if any; resolves once it has exited, so a command that awaits it
   * ends after every process it started (and the shell's `time` counts them).
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
 * A sandbox's own network: only loopback inside; HTTP(S) out through the runner's egress proxy,
 * over a Unix socket bound in and relayed from 127.0.0.1:`proxyPort` by the static forwarder
 * (native/egress-forward.c). Serves a bwrap around one command or around a run's long-lived
 * helper: the forwarder then runs once, before it, and every command it starts gets `env`.
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
   * nftables rules for plain TCP and UDP out (sandbox-tcp.ts), written when a run's sandbox is made
   * (the runner's addresses and name servers then), pasta attached after; absent: proxy only.
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

/**
 * How a clone of a run's sandbox that failed on the run's own folders says so (the fork-server's
 * stage "folders", native/sandbox-clone.c): a link a step of the run left where a mount point
 * goes, that run's doing, not the kernel refusing clones (run-sandbox.ts).
 */
export const RUN_FOLDERS_NOT_ATTACHED = "the run's folders could not be attached";

/** The result of a command that never started: failed (with why) or canceled before its start. */
export function notStarted(
  startedAt: number,
  status: "failed" | "canceled",
  spawnError?: string,
): ExecResult {
  return unmeasured(startedAt, { status, ...(spawnError === undefined ? {} : { spawnError }) });
}
