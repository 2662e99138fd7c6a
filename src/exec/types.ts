/**
 * The executor contract: how a runner runs one process. One file per backend
 * (`process.ts` now; docker and kubernetes later) implements `Executor`.
 */

export type OutputStream = "stdout" | "stderr";

export interface ExecRequest {
  /** argv; argv[0] is looked up in PATH. For a shell: ["bash", "-c", script]. */
  argv: string[];
  /** The whole environment of the process (nothing is inherited implicitly). */
  env: Record<string, string>;
  cwd?: string;
  /** Stops the process group after this long; the result's status is "timeout". */
  timeoutMs?: number;
  /** Aborting stops the process group; the result's status is "canceled". */
  signal?: AbortSignal;
  /** Time between SIGTERM and SIGKILL. */
  killGraceMs: number;
  /** Raw output as it arrives, decoded as UTF-8 (a character split across chunks is kept whole). */
  onOutput: (stream: OutputStream, data: string) => void;
}

export interface ExecResult {
  status: "success" | "failed" | "timeout" | "canceled";
  /** The exit code, or null when the process died of a signal or never started. */
  exitCode: number | null;
  /** The signal that ended the process, if any. */
  signal: string | null;
  durationMs: number;
  /** Peak resident memory of the process group (sum of members' high-water marks), sampled. */
  memoryPeakBytes: number;
  /** User + system CPU time of the process group. */
  cpuMs: number;
  /** Set when the process could not be started at all (missing command, bad cwd). */
  spawnError?: string;
}

/** Told of every process group an executor starts and sees end (see orphan-guard.ts). */
export interface ProcessGroupWatch {
  started(pgid: number): void;
  ended(pgid: number): void;
}

export interface Executor {
  run(request: ExecRequest): Promise<ExecResult>;
}
